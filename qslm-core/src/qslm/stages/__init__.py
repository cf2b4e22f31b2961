"""The pipeline's stages, in the order a run takes them: data, select, train (with module
selection), evaluate, publish. Each talks to the others only through the run context and the
files in the staging folder; :mod:`qslm.pipeline` runs them."""

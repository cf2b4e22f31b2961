"""Using a build: load it (:mod:`qslm.inference.load`), generate text from it
(:mod:`qslm.inference.generation`), serve it over HTTP (:mod:`qslm.inference.server`)."""

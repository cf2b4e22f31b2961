"""``qslm export``: a build as a plain transformers folder (``merged``) or a GGUF file for
llama.cpp and Ollama (``gguf``, through llama.cpp's own converter)."""

"""Text libraries: document conversion (PDF, Office, HTML, EPUB) into headed blocks of prose,
and text similarity (TF-IDF, sentence embeddings) in :mod:`qslm.text.similarity`."""

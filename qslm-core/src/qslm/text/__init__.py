"""Text libraries: document conversion (PDF, Office, HTML, EPUB) into headed blocks of prose."""

"""Pure media code: sniffing, limits from headers, the decoder guard, images, video (PyAV),
spans, orientation, the bounded child. Imports neither flask, google.cloud nor the pipeline
(an import contract in `make lint` holds it)."""

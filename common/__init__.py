"""Pieces shared by the engine and the processor: the quote schema, logging, file I/O."""

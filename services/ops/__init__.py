"""Operators' tools: dead-letter inspection/replay/purge and the stuck-job sweep.

Importable functions; `mediarelay dlq …` and `mediarelay sweep` are thin wrappers.
"""

"""The engine and what builds need from outside: bases, wheels, registry, emulation."""

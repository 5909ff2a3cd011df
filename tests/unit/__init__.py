"""Unit tests: pure logic and the shared client layer."""

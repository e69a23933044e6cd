//! wallet helpers

//! What an import did (being built).

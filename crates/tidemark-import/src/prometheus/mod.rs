//! Importing Prometheus data directories (being built).

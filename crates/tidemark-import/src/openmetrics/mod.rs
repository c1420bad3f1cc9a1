//! Importing OpenMetrics text files (being built).

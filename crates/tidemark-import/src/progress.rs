//! Progress bars for imports (being built).

//! The in-memory head. (Being written: see the head work item.)

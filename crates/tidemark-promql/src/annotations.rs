//! Warnings and infos returned alongside a result, as Prometheus does.

use std::fmt;

/// A 1-based line and column in the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line, starting at 1.
    pub line: usize,
    /// Column in characters, starting at 1.
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Whether an annotation is a warning (the result may be wrong) or an info
/// (the result is right but the query looks suspicious).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnnotationKind {
    /// `PromQL warning: …`
    Warning,
    /// `PromQL info: …`
    Info,
}

/// One annotation: kind, message and the position of the expression it is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Annotation {
    /// Warning or info.
    pub kind: AnnotationKind,
    /// The message, without prefix or position.
    pub message: String,
    /// Where in the query the offending expression starts.
    pub position: Option<Position>,
}

impl Annotation {
    /// A warning about the expression at `position`.
    pub fn warning(message: impl Into<String>, position: Option<Position>) -> Self {
        Annotation { kind: AnnotationKind::Warning, message: message.into(), position }
    }

    /// An info about the expression at `position`.
    pub fn info(message: impl Into<String>, position: Option<Position>) -> Self {
        Annotation { kind: AnnotationKind::Info, message: message.into(), position }
    }
}

impl fmt::Display for Annotation {
    /// Renders as Prometheus does: `PromQL warning: <message> (<line>:<col>)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.kind {
            AnnotationKind::Warning => "PromQL warning",
            AnnotationKind::Info => "PromQL info",
        };
        write!(f, "{prefix}: {}", self.message)?;
        if let Some(p) = self.position {
            write!(f, " ({p})")?;
        }
        Ok(())
    }
}

/// A de-duplicated, ordered set of annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    items: Vec<Annotation>,
}

impl Annotations {
    /// Adds an annotation unless an identical one is already present.
    pub fn add(&mut self, a: Annotation) {
        if !self.items.contains(&a) {
            self.items.push(a);
        }
    }

    /// Adds all annotations of `other`.
    pub fn merge(&mut self, other: Annotations) {
        for a in other.items {
            self.add(a);
        }
    }

    /// All annotations in the order they were first added.
    pub fn iter(&self) -> impl Iterator<Item = &Annotation> {
        self.items.iter()
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Annotation> {
        self.items.iter().filter(|a| a.kind == AnnotationKind::Warning)
    }

    /// The infos.
    pub fn infos(&self) -> impl Iterator<Item = &Annotation> {
        self.items.iter().filter(|a| a.kind == AnnotationKind::Info)
    }

    /// Number of annotations.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

//! Where each node of a YAML document starts, for error messages.
//!
//! `serde_norway` decodes the values but keeps no positions once a value
//! is built (its `Value` has none, and it offers no spanned wrapper), so a
//! second pass over the text with `saphyr-parser`'s event stream records
//! the start of every node: a block mapping starts at its first key, a
//! scalar at its first character (the quote or the `|`/`>` indicator), as
//! the Go YAML library Prometheus uses reports them. Only the first
//! document is read, as Prometheus reads only the first.
//!
//! The tree mirrors the document; lookups never fail hard: a path the
//! position pass does not have (a document the two parsers read
//! differently, a merge key) just has no position.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span};
use tidemark_promql::Position;

/// Index of a node in [`PosTree::nodes`].
type NodeId = usize;

#[derive(Debug)]
enum Kind {
    Scalar,
    Seq(Vec<NodeId>),
    /// Keys as written (non-scalar keys as ""), each with its position.
    Map(Vec<(String, Position, NodeId)>),
    /// `*name`: the node of the anchor, resolved when looked through.
    Alias(usize),
}

#[derive(Debug)]
struct Node {
    pos: Position,
    kind: Kind,
}

/// The positions of a document's nodes.
#[derive(Debug, Default)]
pub(crate) struct PosTree {
    nodes: Vec<Node>,
    anchors: HashMap<usize, NodeId>,
    root: Option<NodeId>,
    /// Where the text nests flow collections deeper than the position
    /// pass allows (255 levels): `serde_norway` would reject it too, but
    /// only after time quadratic in the depth (a minute for 100,000 `[`).
    pub(crate) too_deep: Option<Position>,
}

/// A node in progress while its children are read.
enum Open {
    Seq(NodeId, Vec<NodeId>),
    /// The map, its entries, and a key waiting for its value.
    Map(NodeId, Vec<(String, Position, NodeId)>, Option<(String, Position)>),
}

fn position(span: &Span) -> Position {
    Position { line: span.start.line(), column: span.start.col() + 1 }
}

impl PosTree {
    /// Reads the positions of the first document of `text`; on a YAML
    /// error, whatever was read before it (never a panic, never an error:
    /// the caller has already parsed the text with `serde_norway`).
    pub(crate) fn build(text: &str) -> PosTree {
        let mut tree = PosTree::default();
        let mut parser = Parser::new_from_str(text);
        let mut stack: Vec<Open> = Vec::new();
        // Where the previous event ended: a block scalar's indicator is
        // the first `|` or `>` after it.
        let mut prev_end = Marker::new(0, 1, 0);
        let mut chars = CharCursor::new(text);
        while let Some(next) = parser.next_event() {
            let (event, span) = match next {
                Ok(e) => e,
                Err(e) => {
                    if e.info().contains("recursion limit exceeded") {
                        let m = e.marker();
                        tree.too_deep = Some(Position { line: m.line(), column: m.col() + 1 });
                    }
                    break;
                }
            };
            let mut pos = position(&span);
            if let Event::Scalar(_, ScalarStyle::Literal | ScalarStyle::Folded, _, _) = &event {
                if let Some(p) = chars.block_indicator(prev_end) {
                    pos = p;
                }
            }
            prev_end = span.end;
            let finished: Option<NodeId> = match event {
                Event::StreamEnd | Event::DocumentEnd => break,
                Event::Nothing | Event::StreamStart | Event::DocumentStart(_) => None,
                Event::Scalar(value, _, anchor, _) => {
                    // A scalar in key position is a key, not a node.
                    if let Some(Open::Map(_, _, pending @ None)) = stack.last_mut() {
                        *pending = Some((value.into_owned(), pos));
                        continue;
                    }
                    Some(tree.push(pos, Kind::Scalar, anchor))
                }
                Event::Alias(anchor) => Some(tree.push(pos, Kind::Alias(anchor), 0)),
                Event::SequenceStart(anchor, _) => {
                    let id = tree.push(pos, Kind::Seq(Vec::new()), anchor);
                    stack.push(Open::Seq(id, Vec::new()));
                    None
                }
                Event::MappingStart(anchor, _) => {
                    let id = tree.push(pos, Kind::Map(Vec::new()), anchor);
                    stack.push(Open::Map(id, Vec::new(), None));
                    None
                }
                Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                    Some(Open::Seq(id, items)) => {
                        tree.nodes[id].kind = Kind::Seq(items);
                        Some(id)
                    }
                    Some(Open::Map(id, entries, _)) => {
                        tree.nodes[id].kind = Kind::Map(entries);
                        Some(id)
                    }
                    None => break,
                },
            };
            let Some(id) = finished else { continue };
            match stack.last_mut() {
                None => tree.root = Some(id),
                Some(Open::Seq(_, items)) => items.push(id),
                Some(Open::Map(_, entries, pending)) => match pending.take() {
                    Some((key, key_pos)) => entries.push((key, key_pos, id)),
                    // A collection as a key: remembered without a name.
                    None => *pending = Some((String::new(), tree.nodes[id].pos)),
                },
            }
        }
        tree
    }

    fn push(&mut self, pos: Position, kind: Kind, anchor: usize) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node { pos, kind });
        if anchor != 0 {
            self.anchors.insert(anchor, id);
        }
        id
    }

    /// The first key written twice in one mapping, in document order: the
    /// key, where it first is, where it is again.
    pub(crate) fn first_duplicate_key(&self) -> Option<(String, Position, Position)> {
        let mut found: Option<(String, Position, Position)> = None;
        for node in &self.nodes {
            let Kind::Map(entries) = &node.kind else { continue };
            for (i, (key, second, _)) in entries.iter().enumerate() {
                let Some((_, first, _)) = entries[..i].iter().find(|(k, _, _)| k == key) else { continue };
                let earlier = found.as_ref().is_none_or(|(_, _, f)| (second.line, second.column) < (f.line, f.column));
                if earlier {
                    found = Some((key.clone(), *first, *second));
                }
            }
        }
        found
    }

    /// The document's root node.
    pub(crate) fn root(&self) -> Cursor<'_> {
        Cursor { tree: self, id: self.root }
    }
}

/// Walks the text by character index, forward only, to find block scalar
/// indicators (saphyr's span of a block scalar starts at its content; Go's
/// YAML library places the node at the indicator).
struct CharCursor<'t> {
    text: &'t str,
    /// Character index and byte offset of the same place.
    at: (usize, usize),
}

impl<'t> CharCursor<'t> {
    fn new(text: &'t str) -> CharCursor<'t> {
        CharCursor { text, at: (0, 0) }
    }

    /// The position of the first `|` or `>` outside a comment from `from`.
    fn block_indicator(&mut self, from: Marker) -> Option<Position> {
        // Markers only move forward; an earlier one means a confused
        // parser, and then no position is better than a wrong one.
        if from.index() < self.at.0 {
            return None;
        }
        let skip = from.index() - self.at.0;
        let mut iter = self.text[self.at.1..].char_indices();
        let mut byte = self.text.len();
        for _ in 0..skip {
            match iter.next() {
                Some(_) => {}
                None => return None,
            }
        }
        if let Some((b, _)) = iter.clone().next() {
            byte = self.at.1 + b;
        }
        self.at = (from.index(), byte);
        let (mut line, mut col) = (from.line(), from.col());
        let mut in_comment = false;
        let mut prev = ' ';
        for c in self.text[byte..].chars() {
            match c {
                '\n' => {
                    in_comment = false;
                    line += 1;
                    col = 0;
                    prev = ' ';
                    continue;
                }
                '#' if prev.is_whitespace() => in_comment = true,
                '|' | '>' if !in_comment => return Some(Position { line, column: col + 1 }),
                _ => {}
            }
            prev = c;
            col += 1;
        }
        None
    }
}

/// A place in a [`PosTree`], possibly nowhere (then every lookup is nowhere).
#[derive(Clone, Copy)]
pub(crate) struct Cursor<'a> {
    tree: &'a PosTree,
    id: Option<NodeId>,
}

impl<'a> Cursor<'a> {
    fn node(&self) -> Option<&'a Node> {
        let node = &self.tree.nodes[self.id?];
        match node.kind {
            Kind::Alias(anchor) => self.tree.anchors.get(&anchor).map(|&id| &self.tree.nodes[id]),
            _ => Some(node),
        }
    }

    /// Where this node starts (for an alias, where the alias is written).
    pub(crate) fn pos(&self) -> Option<Position> {
        self.id.map(|id| self.tree.nodes[id].pos)
    }

    /// The value of the first `key` of a mapping.
    pub(crate) fn get(&self, key: &str) -> Cursor<'a> {
        self.entry(key, 0).1
    }

    /// The position of the `nth` (from 0) occurrence of `key` in a mapping,
    /// and its value.
    pub(crate) fn entry(&self, key: &str, nth: usize) -> (Option<Position>, Cursor<'a>) {
        let found = match self.node().map(|n| &n.kind) {
            Some(Kind::Map(entries)) => entries.iter().filter(|(k, _, _)| k == key).nth(nth),
            _ => None,
        };
        match found {
            Some((_, pos, id)) => (Some(*pos), Cursor { tree: self.tree, id: Some(*id) }),
            None => (None, Cursor { tree: self.tree, id: None }),
        }
    }

    /// The `i`th item of a sequence.
    pub(crate) fn index(&self, i: usize) -> Cursor<'a> {
        let id = match self.node().map(|n| &n.kind) {
            Some(Kind::Seq(items)) => items.get(i).copied(),
            _ => None,
        };
        Cursor { tree: self.tree, id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn positions_as_go_yaml_reports_them() {
        let text = "groups:\n- name: g\n  rules:\n  - record: 0\n    expr: |\n      sum(up\n  -   alert: \"B\"\n      expr: 'x'\n  - {alert: C, expr: \"up +\"}\n";
        let tree = PosTree::build(text);
        let rules = tree.root().get("groups").index(0).get("rules");
        // These are the positions promtool 2.42 prints for the same file.
        assert_eq!(rules.index(0).get("expr").pos(), p(5, 11));
        assert_eq!(rules.index(0).get("record").pos(), p(4, 13));
        assert_eq!(rules.index(1).get("expr").pos(), p(8, 13));
        assert_eq!(rules.index(2).get("expr").pos(), p(9, 22));
        assert_eq!(tree.root().get("groups").index(0).pos(), p(2, 3));
        assert_eq!(rules.index(1).entry("alert", 0).0, p(7, 7));
        assert_eq!(rules.index(9).get("expr").pos(), None);
    }

    #[test]
    fn aliases_look_through_to_their_anchor() {
        let text = "a: &x\n  k: v\nb: *x\n";
        let tree = PosTree::build(text);
        assert_eq!(tree.root().get("b").get("k").pos(), p(2, 6));
        assert_eq!(tree.root().get("b").pos(), p(3, 4));
    }

    #[test]
    fn duplicate_keys_are_kept_in_order() {
        let tree = PosTree::build("a: 1\nb: 2\na: 3\n");
        assert_eq!(tree.root().entry("a", 1).0, p(3, 1));
        assert_eq!(tree.root().entry("a", 2).0, None);
        let tree = PosTree::build("x:\n  - b: 1\n    c: 2\n    b: 3\n  - d: 1\n    d: 2\n");
        assert_eq!(tree.first_duplicate_key(), Some(("b".to_string(), p(2, 5).unwrap(), p(4, 5).unwrap())));
    }
}

//! The parser of Go's `text/template`: tokens to a tree of nodes that keep
//! their byte offsets and print back as Go's `Node.String()` does, since
//! run-time errors quote them (`executing "x" at <humanize "a">`).

use std::collections::BTreeMap;
use std::fmt;

use super::lex::{lex, Kind, Token};

/// Deepest nesting of parentheses and control blocks the parser accepts.
/// Go allows 10000; the tree is walked recursively here, so the bound is
/// kept well inside a thread's stack.
pub(crate) const MAX_PARSE_DEPTH: usize = 100;

/// A number literal as Go's parser reads it.
#[derive(Debug, Clone)]
pub(crate) struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
}

/// An operand of a command.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Field { pos: usize, idents: Vec<String> },
    Variable { pos: usize, idents: Vec<String> },
    Identifier { pos: usize, name: String },
    Dot { pos: usize },
    Nil { pos: usize },
    Bool { pos: usize, val: bool },
    Number { pos: usize, num: Number },
    Str { pos: usize, quoted: String, text: String },
    Pipe(Box<Pipe>),
    Chain { pos: usize, node: Box<Arg>, fields: Vec<String> },
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Identifier { pos, .. }
            | Arg::Dot { pos }
            | Arg::Nil { pos }
            | Arg::Bool { pos, .. }
            | Arg::Number { pos, .. }
            | Arg::Str { pos, .. }
            | Arg::Chain { pos, .. } => *pos,
            Arg::Pipe(p) => p.pos,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { idents, .. } => {
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Variable { idents, .. } => f.write_str(&idents.join(".")),
            Arg::Identifier { name, .. } => f.write_str(name),
            Arg::Dot { .. } => f.write_str("."),
            Arg::Nil { .. } => f.write_str("nil"),
            Arg::Bool { val, .. } => write!(f, "{val}"),
            Arg::Number { num, .. } => f.write_str(&num.text),
            Arg::Str { quoted, .. } => f.write_str(quoted),
            Arg::Pipe(p) => write!(f, "{p}"),
            Arg::Chain { node, fields, .. } => {
                if let Arg::Pipe(p) = node.as_ref() {
                    write!(f, "({p})")?;
                } else {
                    write!(f, "{node}")?;
                }
                for x in fields {
                    write!(f, ".{x}")?;
                }
                Ok(())
            }
        }
    }
}

/// A command: operands separated by spaces.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if let Arg::Pipe(p) = a {
                write!(f, "({p})")?;
            } else {
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

/// A pipeline with its optional variable declarations.
#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// `if`, `range` or `with`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    If,
    Range,
    With,
}

/// A node of a template's list.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text { text: String },
    Action { pos: usize, pipe: Pipe },
    Control { kind: Control, pipe: Pipe, list: List, else_list: Option<List> },
    Template { pos: usize, name: String, pipe: Option<Pipe> },
    Break { pos: usize },
    Continue { pos: usize },
}

impl Node {
    pub fn pos(&self) -> usize {
        match self {
            Node::Text { .. } => 0,
            Node::Action { pos, .. } | Node::Template { pos, .. } | Node::Break { pos } | Node::Continue { pos } => {
                *pos
            }
            Node::Control { pipe, .. } => pipe.pos,
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Text { text } => f.write_str(text),
            Node::Action { pipe, .. } => write!(f, "{{{{{pipe}}}}}"),
            Node::Control { kind, pipe, list, else_list } => {
                let word = match kind {
                    Control::If => "if",
                    Control::Range => "range",
                    Control::With => "with",
                };
                write!(f, "{{{{{word} {pipe}}}}}{list}")?;
                if let Some(e) = else_list {
                    write!(f, "{{{{else}}}}{e}")?;
                }
                f.write_str("{{end}}")
            }
            Node::Template { name, pipe, .. } => match pipe {
                None => write!(f, "{{{{template {}}}}}", super::gofmt::quote(name)),
                Some(p) => write!(f, "{{{{template {} {p}}}}}", super::gofmt::quote(name)),
            },
            Node::Break { .. } => f.write_str("{{break}}"),
            Node::Continue { .. } => f.write_str("{{continue}}"),
        }
    }
}

/// A list of nodes.
#[derive(Debug, Clone, Default)]
pub(crate) struct List {
    pub nodes: Vec<Node>,
}

impl fmt::Display for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.nodes {
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

/// A parsed template: the main tree and every `{{define}}`d one.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub trees: BTreeMap<String, List>,
}

/// What `itemList` stopped on.
enum Stop {
    End,
    Else { pos: usize },
}

enum Item {
    Node(Node),
    Stop(Stop),
}

struct Parser<'a> {
    name: &'a str,
    toks: Vec<Token>,
    i: usize,
    hi: usize,
    vars: Vec<String>,
    has_func: &'a dyn Fn(&str) -> bool,
    trees: BTreeMap<String, List>,
    depth: usize,
    range_depth: usize,
    /// Line of the `{{` of the action being parsed (0 outside actions).
    action_line: usize,
}

type PResult<T> = Result<T, String>;

/// Parses `text` as template `name`; `has_func` says which function names
/// exist. The error is Go's text (`template: NAME:LINE: ...`).
pub(crate) fn parse(name: &str, text: &str, has_func: &dyn Fn(&str) -> bool) -> Result<Parsed, String> {
    let toks = lex(text);
    let mut p = Parser {
        name,
        toks,
        i: 0,
        hi: 0,
        vars: vec!["$".into()],
        has_func,
        trees: BTreeMap::new(),
        depth: 0,
        range_depth: 0,
        action_line: 0,
    };
    let root = p.parse_top()?;
    p.add(name.to_string(), root)?;
    Ok(Parsed { trees: p.trees })
}

fn is_empty_tree(l: &List) -> bool {
    l.nodes.iter().all(|n| match n {
        Node::Text { text } => text.trim_matches([' ', '\t', '\n', '\r', '\u{b}', '\u{c}']).is_empty(),
        _ => false,
    })
}

impl Parser<'_> {
    fn next(&mut self) -> Token {
        let idx = self.i.min(self.toks.len() - 1);
        self.i = idx + 1;
        self.hi = self.hi.max(idx);
        self.toks[idx].clone()
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn peek(&mut self) -> Token {
        let t = self.next();
        self.backup();
        t
    }

    fn next_non_space(&mut self) -> Token {
        loop {
            let t = self.next();
            if t.kind != Kind::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Token {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn errorf<T>(&self, msg: impl fmt::Display) -> PResult<T> {
        let line = self.toks.get(self.hi).map_or(1, |t| t.line);
        Err(format!("template: {}:{}: {}", self.name, line, msg))
    }

    fn unexpected<T>(&self, t: &Token, context: &str) -> PResult<T> {
        if t.kind == Kind::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != t.line {
                extra = format!(" in action started at {}:{}", self.name, self.action_line);
                if t.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{t}{extra}"));
        }
        self.errorf(format!("unexpected {t} in {context}"))
    }

    fn expect(&mut self, kind: Kind, context: &str) -> PResult<Token> {
        let t = self.next_non_space();
        if t.kind != kind {
            return self.unexpected(&t, context);
        }
        Ok(t)
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return self.errorf("max expression depth exceeded");
        }
        Ok(())
    }

    fn add(&mut self, name: String, root: List) -> PResult<()> {
        match self.trees.get(&name) {
            Some(existing) if !is_empty_tree(existing) => {
                if !is_empty_tree(&root) {
                    return self
                        .errorf(format!("template: multiple definition of template {}", super::gofmt::quote(&name)));
                }
                Ok(())
            }
            _ => {
                self.trees.insert(name, root);
                Ok(())
            }
        }
    }

    fn parse_top(&mut self) -> PResult<List> {
        let mut root = List::default();
        while self.peek().kind != Kind::Eof {
            if self.peek().kind == Kind::LeftDelim {
                let mark = self.i;
                self.next();
                if self.next_non_space().kind == Kind::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.i = mark;
            }
            match self.text_or_action()? {
                Item::Stop(Stop::End) => return self.errorf("unexpected {{end}}"),
                Item::Stop(Stop::Else { .. }) => return self.errorf("unexpected {{else}}"),
                Item::Node(n) => root.nodes.push(n),
            }
        }
        Ok(root)
    }

    fn parse_definition(&mut self) -> PResult<()> {
        let context = "define clause";
        let t = self.next_non_space();
        if t.kind != Kind::String && t.kind != Kind::RawString {
            return self.unexpected(&t, context);
        }
        let name = match unquote(&t.val) {
            Some(s) => s,
            None => return self.errorf("invalid syntax"),
        };
        self.expect(Kind::RightDelim, context)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, stop) = self.item_list()?;
        self.vars = saved;
        if let Stop::Else { .. } = stop {
            return self.errorf(format!("unexpected {{{{else}}}} in {context}"));
        }
        self.add(name, list)
    }

    fn item_list(&mut self) -> PResult<(List, Stop)> {
        let mut list = List::default();
        while self.peek_non_space().kind != Kind::Eof {
            match self.text_or_action()? {
                Item::Stop(s) => return Ok((list, s)),
                Item::Node(n) => list.nodes.push(n),
            }
        }
        self.errorf("unexpected EOF")
    }

    fn text_or_action(&mut self) -> PResult<Item> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Text => Ok(Item::Node(Node::Text { text: t.val.to_string() })),
            Kind::LeftDelim => {
                self.action_line = t.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => self.unexpected(&t, "input"),
        }
    }

    fn action(&mut self) -> PResult<Item> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Block => return self.block_control().map(Item::Node),
            Kind::Else => return self.else_control().map(Item::Stop),
            Kind::End => {
                self.expect(Kind::RightDelim, "end")?;
                return Ok(Item::Stop(Stop::End));
            }
            Kind::If => return self.control(Control::If).map(Item::Node),
            Kind::Range => return self.control(Control::Range).map(Item::Node),
            Kind::Template => return self.template_control().map(Item::Node),
            Kind::With => return self.control(Control::With).map(Item::Node),
            Kind::Break | Kind::Continue => {
                let word = if t.kind == Kind::Break { "break" } else { "continue" };
                let next = self.next_non_space();
                if next.kind != Kind::RightDelim {
                    return self.unexpected(&next, &format!("{{{{{word}}}}}"));
                }
                if self.range_depth == 0 {
                    return self.errorf(format!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
                return Ok(Item::Node(if t.kind == Kind::Break {
                    Node::Break { pos: t.pos }
                } else {
                    Node::Continue { pos: t.pos }
                }));
            }
            _ => {}
        }
        self.backup();
        let t = self.peek();
        let pipe = self.pipeline("command", Kind::RightDelim)?;
        Ok(Item::Node(Node::Action { pos: t.pos, pipe }))
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> PResult<Pipe> {
        self.enter()?;
        let r = self.pipeline_inner(context, end);
        self.depth -= 1;
        r
    }

    fn pipeline_inner(&mut self, context: &str, end: Kind) -> PResult<Pipe> {
        let start = self.peek_non_space();
        let mut pipe = Pipe { pos: start.pos, is_assign: false, decl: Vec::new(), cmds: Vec::new() };
        'decls: loop {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                break;
            }
            self.next_non_space();
            let mark = self.i - 1;
            let next = self.peek_non_space();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.val.to_string());
                    self.vars.push(v.val.to_string());
                }
                Kind::Char if &*next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(v.val.to_string());
                    self.vars.push(v.val.to_string());
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            Kind::Variable | Kind::RightDelim | Kind::RightParen => continue 'decls,
                            _ => return self.errorf("range can only initialize variables"),
                        }
                    }
                    return self.errorf(format!("too many declarations in {context}"));
                }
                _ => self.i = mark,
            }
            break;
        }
        loop {
            let t = self.next_non_space();
            match t.kind {
                k if k == end => {
                    if pipe.cmds.is_empty() {
                        return self.errorf(format!("missing value for {context}"));
                    }
                    for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                        if matches!(
                            c.args[0],
                            Arg::Bool { .. } | Arg::Dot { .. } | Arg::Nil { .. } | Arg::Number { .. } | Arg::Str { .. }
                        ) {
                            return self.errorf(format!("non executable command in pipeline stage {}", i + 1));
                        }
                    }
                    return Ok(pipe);
                }
                Kind::Bool
                | Kind::CharConstant
                | Kind::Complex
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                _ => return self.unexpected(&t, context),
            }
        }
    }

    fn control(&mut self, kind: Control) -> PResult<Node> {
        self.enter()?;
        let mark = self.vars.len();
        let r = self.control_inner(kind);
        self.vars.truncate(mark);
        self.depth -= 1;
        r
    }

    fn control_inner(&mut self, kind: Control) -> PResult<Node> {
        let context = match kind {
            Control::If => "if",
            Control::Range => "range",
            Control::With => "with",
        };
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        if kind == Control::Range {
            self.range_depth += 1;
        }
        let listed = self.item_list();
        if kind == Control::Range {
            self.range_depth -= 1;
        }
        let (list, stop) = listed?;
        let mut else_list = None;
        if let Stop::Else { pos } = stop {
            if kind == Control::If && self.peek().kind == Kind::If {
                self.next();
                let _ = pos;
                let inner = self.control(Control::If)?;
                else_list = Some(List { nodes: vec![inner] });
            } else {
                let (l, stop) = self.item_list()?;
                if let Stop::Else { .. } = stop {
                    return self.errorf("expected end; found {{else}}");
                }
                else_list = Some(l);
            }
        }
        Ok(Node::Control { kind, pipe, list, else_list })
    }

    fn else_control(&mut self) -> PResult<Stop> {
        let peek = self.peek_non_space();
        if peek.kind == Kind::If {
            return Ok(Stop::Else { pos: peek.pos });
        }
        let t = self.expect(Kind::RightDelim, "else")?;
        Ok(Stop::Else { pos: t.pos })
    }

    fn template_name(&mut self, t: &Token, context: &str) -> PResult<String> {
        match t.kind {
            Kind::String | Kind::RawString => match unquote(&t.val) {
                Some(s) => Ok(s),
                None => self.errorf("invalid syntax"),
            },
            _ => self.unexpected(t, context),
        }
    }

    fn block_control(&mut self) -> PResult<Node> {
        let context = "block clause";
        let t = self.next_non_space();
        let name = self.template_name(&t, context)?;
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        // A block is a template of its own: no outer variables or range.
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        self.enter()?;
        let listed = self.item_list();
        self.depth -= 1;
        self.vars = saved;
        self.range_depth = saved_range;
        let (list, stop) = listed?;
        if let Stop::Else { .. } = stop {
            return self.errorf(format!("unexpected {{{{else}}}} in {context}"));
        }
        self.add(name.clone(), list)?;
        Ok(Node::Template { pos: t.pos, name, pipe: Some(pipe) })
    }

    fn template_control(&mut self) -> PResult<Node> {
        let context = "template clause";
        let t = self.next_non_space();
        let name = self.template_name(&t, context)?;
        let mut pipe = None;
        if self.next_non_space().kind != Kind::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(context, Kind::RightDelim)?);
        }
        Ok(Node::Template { pos: t.pos, name, pipe })
    }

    fn command(&mut self) -> PResult<Command> {
        let start = self.peek_non_space();
        let mut cmd = Command { pos: start.pos, args: Vec::new() };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let t = self.next();
            match t.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.unexpected(&t, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.errorf("empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            let f = self.next();
            fields.push(f.val[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut idents, .. } => {
                idents.extend(fields);
                Arg::Field { pos: chain_pos, idents }
            }
            Arg::Variable { mut idents, .. } => {
                idents.extend(fields);
                Arg::Variable { pos: chain_pos, idents }
            }
            Arg::Bool { .. } | Arg::Str { .. } | Arg::Number { .. } | Arg::Nil { .. } | Arg::Dot { .. } => {
                return self.errorf(format!("unexpected . after term {}", super::gofmt::quote(&node.to_string())));
            }
            other => Arg::Chain { pos: chain_pos, node: Box::new(other), fields },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let t = self.next_non_space();
        Ok(Some(match t.kind {
            Kind::Error => return self.unexpected(&t, "operand"),
            Kind::Identifier => {
                if !(self.has_func)(&t.val) {
                    return self.errorf(format!("function {} not defined", super::gofmt::quote(&t.val)));
                }
                Arg::Identifier { pos: t.pos, name: t.val.to_string() }
            }
            Kind::Dot => Arg::Dot { pos: t.pos },
            Kind::Nil => Arg::Nil { pos: t.pos },
            Kind::Variable => {
                let idents: Vec<String> = t.val.split('.').map(str::to_string).collect();
                if !self.vars.iter().any(|v| *v == idents[0]) {
                    return self.errorf(format!("undefined variable {}", super::gofmt::quote(&idents[0])));
                }
                Arg::Variable { pos: t.pos, idents }
            }
            Kind::Field => Arg::Field { pos: t.pos, idents: t.val[1..].split('.').map(str::to_string).collect() },
            Kind::Bool => Arg::Bool { pos: t.pos, val: &*t.val == "true" },
            Kind::CharConstant | Kind::Complex | Kind::Number => {
                let num = match parse_number(&t.val, t.kind) {
                    Ok(n) => n,
                    Err(e) => return self.errorf(e),
                };
                Arg::Number { pos: t.pos, num }
            }
            Kind::LeftParen => Arg::Pipe(Box::new(self.pipeline("parenthesized pipeline", Kind::RightParen)?)),
            Kind::String | Kind::RawString => match unquote(&t.val) {
                Some(text) => Arg::Str { pos: t.pos, quoted: t.val.to_string(), text },
                None => return self.errorf("invalid syntax"),
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// Go's `strconv.Unquote` for the literals the lexer accepts.
pub(crate) fn unquote(s: &str) -> Option<String> {
    if let Some(inner) = s.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        if inner.contains('`') {
            return None;
        }
        return Some(inner.replace('\r', ""));
    }
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\n' => return None,
            '\\' => out.push(unescape(&mut chars, '"')?),
            c => out.push(c),
        }
    }
    Some(out)
}

fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, quote: char) -> Option<char> {
    let c = chars.next()?;
    let hex = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v * 16 + chars.next()?.to_digit(16)?;
        }
        Some(v)
    };
    Some(match c {
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        '\\' => '\\',
        c if c == quote => c,
        'x' => char::from_u32(hex(chars, 2)?)?,
        'u' => char::from_u32(hex(chars, 4)?)?,
        'U' => char::from_u32(hex(chars, 8)?)?,
        '0'..='7' => {
            let mut v = c.to_digit(8)?;
            for _ in 0..2 {
                v = v * 8 + chars.next()?.to_digit(8)?;
            }
            if v > 255 {
                return None;
            }
            char::from_u32(v)?
        }
        _ => return None,
    })
}

/// Go's `parse.newNumber`: which of int and float64 the literal can be.
fn parse_number(text: &str, kind: Kind) -> Result<Number, String> {
    if kind == Kind::CharConstant {
        let inner = text.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')).ok_or("malformed character constant")?;
        let mut chars = inner.chars().peekable();
        let c = match chars.next() {
            Some('\\') => unescape(&mut chars, '\'').ok_or("invalid syntax")?,
            Some(c) => c,
            None => return Err("invalid syntax".into()),
        };
        if chars.next().is_some() {
            return Err(format!("malformed character constant: {text}"));
        }
        let v = c as i64;
        return Ok(Number { text: text.into(), int: Some(v), float: Some(v as f64) });
    }
    if kind == Kind::Complex {
        return Err(format!("illegal number syntax: {}", super::gofmt::quote(text)));
    }
    let int = parse_go_int(text);
    let mut float = int.map(|i| i as f64);
    let mut n = Number { text: text.into(), int, float: None };
    if n.int.is_none() {
        if let Some(f) = parse_go_float(text) {
            if !text.contains(['.', 'e', 'E', 'p', 'P']) {
                return Err(format!("integer overflow: {}", super::gofmt::quote(text)));
            }
            float = Some(f);
            if f.fract() == 0.0 && f.abs() < 9.2e18 {
                n.int = Some(f as i64);
            }
        }
    }
    n.float = float;
    if n.int.is_none() && n.float.is_none() {
        let unsigned = text.trim_start_matches('+');
        if parse_go_uint(unsigned).is_some() {
            // Fits uint64 only: Go keeps it as an unsigned constant.
            return Ok(Number { text: text.into(), int: None, float: parse_go_uint(unsigned).map(|u| u as f64) });
        }
        return Err(format!("illegal number syntax: {}", super::gofmt::quote(text)));
    }
    Ok(n)
}

fn parse_go_uint(text: &str) -> Option<u64> {
    let (digits, radix) = radix_of(text)?;
    u64::from_str_radix(&digits, radix).ok()
}

fn radix_of(text: &str) -> Option<(String, u32)> {
    let lower = text.to_ascii_lowercase();
    let (body, radix, prefixed) = if let Some(r) = lower.strip_prefix("0x") {
        (r.to_string(), 16, true)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (r.to_string(), 8, true)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (r.to_string(), 2, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (lower[1..].to_string(), 8, true)
    } else {
        (lower.clone(), 10, false)
    };
    if body.contains('_') {
        // Go allows underscores only between digits, with base prefixes.
        if !prefixed && !body.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        if body.starts_with('_') && !prefixed || body.ends_with('_') || body.contains("__") {
            return None;
        }
    }
    let digits: String = body.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() {
        return None;
    }
    Some((digits, radix))
}

fn parse_go_int(text: &str) -> Option<i64> {
    let (neg, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (digits, radix) = radix_of(rest)?;
    let mag = u64::from_str_radix(&digits, radix).ok()?;
    if neg {
        if mag <= i64::MAX as u64 + 1 {
            Some((mag as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else {
        i64::try_from(mag).ok()
    }
}

fn parse_go_float(text: &str) -> Option<f64> {
    if text.contains(['x', 'X']) || text.ends_with('i') {
        return None;
    }
    let t: String = text.chars().filter(|c| *c != '_').collect();
    let body = t.trim_start_matches(['+', '-']);
    if body.is_empty() || !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    t.parse::<f64>().ok()
}

//! Executing a parsed template as Go's `text/template` does (Prometheus
//! sets `missingkey=zero`): the walk, pipelines, variables, field access,
//! argument typing and the error messages that name the node being run.

use super::funcs::{self, Env, Param};
use super::gofmt::quote;
use super::parse::{Arg, Command, Control, List, Node, Parsed, Pipe};
use super::value::{MapKind, Value};

/// Deepest nesting of `{{template}}` calls. Go allows 100000 before it
/// reports `exceeded maximum template depth`; the walk here is recursive,
/// so the bound stays inside a thread's stack.
pub(crate) const MAX_EXEC_DEPTH: usize = 100;
/// Most nodes one expansion may evaluate, so that templates calling
/// templates cannot take exponential time.
pub(crate) const MAX_STEPS: u64 = 10_000_000;
/// Largest output or string value one expansion may build.
pub(crate) const MAX_OUTPUT: usize = 16 << 20;

/// The node being executed, for error messages.
#[derive(Clone, Copy)]
enum At<'a> {
    Node(&'a Node),
    Pipe(&'a Pipe),
    Cmd(&'a Command),
    Arg(&'a Arg),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::Node(n) => n.pos(),
            At::Pipe(p) => p.pos,
            At::Cmd(c) => c.pos,
            At::Arg(a) => a.pos(),
        }
    }

    fn context(&self) -> String {
        match self {
            At::Node(n) => n.to_string(),
            At::Pipe(p) => p.to_string(),
            At::Cmd(c) => c.to_string(),
            At::Arg(a) => a.to_string(),
        }
    }
}

/// What a walked list asks of the enclosing `range`.
#[derive(PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

type EResult<T> = Result<T, String>;

pub(crate) struct State<'a> {
    parsed: &'a Parsed,
    text: &'a str,
    parse_name: &'a str,
    tmpl_name: &'a str,
    node: Option<At<'a>>,
    vars: Vec<(String, Value)>,
    depth: usize,
    steps: u64,
    pub out: String,
    env: &'a Env<'a>,
}

/// Runs template `name` of `parsed` on `data`; `Err` is Go's message.
pub(crate) fn execute(parsed: &Parsed, text: &str, name: &str, data: Value, env: &Env<'_>) -> Result<String, String> {
    let Some(root) = parsed.trees.get(name) else {
        return Err(format!("template: {name}: {} is an incomplete or empty template", quote(name)));
    };
    let mut s = State {
        parsed,
        text,
        parse_name: name,
        tmpl_name: name,
        node: None,
        vars: vec![("$".into(), data.clone())],
        depth: 0,
        steps: 0,
        out: String::new(),
        env,
    };
    s.walk_list(&data, root)?;
    Ok(s.out)
}

impl<'a> State<'a> {
    fn at(&mut self, at: At<'a>) {
        self.node = Some(at);
    }

    fn errorf(&self, msg: impl std::fmt::Display) -> String {
        match self.node {
            None => format!("template: {}: {}", self.tmpl_name, msg),
            Some(at) => {
                let pos = at.pos().min(self.text.len());
                let before = &self.text[..pos];
                let col = match before.rfind('\n') {
                    None => pos,
                    Some(i) => pos - (i + 1),
                };
                let line = 1 + before.matches('\n').count();
                format!(
                    "template: {}:{}:{}: executing {} at <{}>: {}",
                    self.parse_name,
                    line,
                    col,
                    quote(self.tmpl_name),
                    at.context(),
                    msg
                )
            }
        }
    }

    fn step(&mut self) -> EResult<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.errorf(format!("template evaluation exceeded {MAX_STEPS} steps")));
        }
        if self.out.len() > MAX_OUTPUT {
            return Err(self.errorf(format!("template output exceeded {MAX_OUTPUT} bytes")));
        }
        Ok(())
    }

    fn var_value(&self, name: &str) -> EResult<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn set_var(&mut self, name: &str, value: Value) -> EResult<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn walk_list(&mut self, dot: &Value, list: &'a List) -> EResult<Flow> {
        for n in &list.nodes {
            let flow = self.walk(dot, n)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &'a Node) -> EResult<Flow> {
        self.step()?;
        self.at(At::Node(node));
        match node {
            Node::Text { text } => self.out.push_str(text),
            Node::Action { pipe, .. } => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at(At::Node(node));
                    v.print_template(&mut self.out);
                }
            }
            Node::Control { kind: Control::Range, pipe, list, else_list } => {
                return self.walk_range(dot, node, pipe, list, else_list.as_ref());
            }
            Node::Control { kind, pipe, list, else_list } => {
                let mark = self.vars.len();
                let r = (|| {
                    let v = self.eval_pipeline(dot, pipe)?;
                    if v.truth() {
                        if *kind == Control::With {
                            self.walk_list(&v, list)
                        } else {
                            self.walk_list(dot, list)
                        }
                    } else if let Some(e) = else_list {
                        self.walk_list(dot, e)
                    } else {
                        Ok(Flow::Normal)
                    }
                })();
                self.vars.truncate(mark);
                return r;
            }
            Node::Template { name, pipe, .. } => {
                let Some(tree) = self.parsed.trees.get(name) else {
                    return Err(self.errorf(format!("template {} not defined", quote(name))));
                };
                if self.depth >= MAX_EXEC_DEPTH {
                    return Err(self.errorf(format!("exceeded maximum template depth ({MAX_EXEC_DEPTH})")));
                }
                let new_dot = match pipe {
                    Some(p) => self.eval_pipeline(dot, p)?,
                    None => Value::Invalid,
                };
                let saved_vars = std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
                let saved_name = std::mem::replace(&mut self.tmpl_name, name.as_str());
                self.depth += 1;
                let r = self.walk_list(&new_dot, tree);
                self.depth -= 1;
                self.tmpl_name = saved_name;
                self.vars = saved_vars;
                r?;
            }
            Node::Break { .. } => return Ok(Flow::Break),
            Node::Continue { .. } => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_range(
        &mut self,
        dot: &Value,
        node: &'a Node,
        pipe: &'a Pipe,
        list: &'a List,
        else_list: Option<&'a List>,
    ) -> EResult<Flow> {
        let outer = self.vars.len();
        let r = (|| {
            let val = self.eval_pipeline(dot, pipe)?;
            let mark = self.vars.len();
            let one = |s: &mut Self, index: Value, elem: Value| -> EResult<Flow> {
                let n = s.vars.len();
                if !pipe.decl.is_empty() {
                    s.vars[n - 1].1 = elem.clone();
                }
                if pipe.decl.len() > 1 {
                    s.vars[n - 2].1 = index;
                }
                let f = s.walk_list(&elem, list);
                s.vars.truncate(mark);
                f
            };
            match &val {
                Value::Vector(v) if !v.borrow().is_empty() => {
                    let items = v.borrow().clone();
                    for (i, smp) in items.iter().enumerate() {
                        if one(self, Value::Int(i as i64), Value::Sample(smp.clone()))? == Flow::Break {
                            break;
                        }
                    }
                    return Ok(Flow::Normal);
                }
                Value::Map(_, m) if !m.is_empty() => {
                    for (k, v) in m.iter() {
                        if one(self, Value::str(k), v.clone())? == Flow::Break {
                            break;
                        }
                    }
                    return Ok(Flow::Normal);
                }
                Value::Vector(_) | Value::Map(..) | Value::Invalid => {}
                other => {
                    let mut shown = String::new();
                    other.print_template(&mut shown);
                    if let Value::NilSample = other {
                        shown = "<nil>".into();
                    }
                    return Err(self.errorf(format!("range can't iterate over {shown}")));
                }
            }
            let _ = node;
            match else_list {
                Some(e) => self.walk_list(dot, e),
                None => Ok(Flow::Normal),
            }
        })();
        self.vars.truncate(outer);
        r
    }

    pub(crate) fn eval_pipeline(&mut self, dot: &Value, pipe: &'a Pipe) -> EResult<Value> {
        self.at(At::Pipe(pipe));
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Invalid);
        for v in &pipe.decl {
            if pipe.is_assign {
                self.set_var(v, value.clone())?;
            } else {
                self.vars.push((v.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], final_: &Option<Value>) -> EResult<()> {
        if args.len() > 1 || final_.is_some() {
            return Err(self.errorf(format!("can't give argument to non-function {}", args[0])));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'a Command, final_: Option<Value>) -> EResult<Value> {
        self.step()?;
        let first = &cmd.args[0];
        match first {
            Arg::Field { idents, .. } => {
                self.at(At::Arg(first));
                return self.eval_field_chain(dot, dot.clone(), idents, &cmd.args, final_);
            }
            Arg::Chain { .. } => return self.eval_chain(dot, first, &cmd.args, final_),
            Arg::Identifier { name, .. } => {
                self.at(At::Arg(first));
                return self.eval_function(dot, name, At::Cmd(cmd), &cmd.args, final_);
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &final_)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Variable { idents, .. } => return self.eval_variable(dot, first, idents, &cmd.args, final_),
            _ => {}
        }
        self.at(At::Arg(first));
        self.not_a_function(&cmd.args, &final_)?;
        match first {
            Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Nil { .. } => Err(self.errorf("nil is not a command")),
            Arg::Number { .. } => self.ideal_constant(first),
            Arg::Str { text, .. } => Ok(Value::str(text)),
            _ => Err(self.errorf(format!("can't evaluate command {}", quote(&first.to_string())))),
        }
    }

    fn ideal_constant(&mut self, arg: &'a Arg) -> EResult<Value> {
        self.at(At::Arg(arg));
        let Arg::Number { num, .. } = arg else {
            return Ok(Value::Invalid);
        };
        let t = &num.text;
        let hex_int = t.len() > 2 && t.starts_with('0') && t[1..].starts_with(['x', 'X']) && !t.contains(['p', 'P']);
        let rune = t.starts_with('\'');
        if let Some(f) = num.float {
            if !hex_int && !rune && t.contains(['.', 'e', 'E', 'p', 'P']) {
                return Ok(Value::Float(f));
            }
        }
        match num.int {
            Some(i) => Ok(Value::Int(i)),
            None => Err(self.errorf(format!("{t} overflows int"))),
        }
    }

    fn eval_variable(
        &mut self,
        dot: &Value,
        node: &'a Arg,
        idents: &[String],
        args: &'a [Arg],
        final_: Option<Value>,
    ) -> EResult<Value> {
        self.at(At::Arg(node));
        let value = self.var_value(&idents[0])?;
        if idents.len() == 1 {
            self.not_a_function(args, &final_)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, &idents[1..], args, final_)
    }

    fn eval_chain(&mut self, dot: &Value, chain: &'a Arg, args: &'a [Arg], final_: Option<Value>) -> EResult<Value> {
        self.at(At::Arg(chain));
        let Arg::Chain { node, fields, .. } = chain else {
            return Ok(Value::Invalid);
        };
        if let Arg::Nil { .. } = node.as_ref() {
            return Err(self.errorf(format!("indirection through explicit nil in {chain}")));
        }
        let receiver = self.eval_arg(dot, None, node)?;
        self.eval_field_chain(dot, receiver, fields, args, final_)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut receiver: Value,
        idents: &[String],
        args: &'a [Arg],
        final_: Option<Value>,
    ) -> EResult<Value> {
        let n = idents.len();
        for ident in &idents[..n - 1] {
            receiver = self.eval_field(dot, ident, &[], None, receiver)?;
        }
        self.eval_field(dot, &idents[n - 1], args, final_, receiver)
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        field: &str,
        args: &'a [Arg],
        final_: Option<Value>,
        receiver: Value,
    ) -> EResult<Value> {
        let has_args = args.len() > 1 || final_.is_some();
        let typ = receiver.type_name();
        match &receiver {
            Value::Invalid => return Ok(Value::Invalid),
            Value::Time(_) if funcs::time_method(field).is_some() => {
                let spec = funcs::time_method(field).unwrap_or(funcs::NO_FUNC);
                let mut values = self.eval_call_args(dot, field, spec, args, final_)?;
                values.insert(0, receiver.clone());
                return funcs::call(field, values, self.env)
                    .map_err(|e| self.errorf(format!("error calling {field}: {e}")));
            }
            Value::Data(d) => {
                let v = match field {
                    "Labels" => Some(d.labels.clone()),
                    "ExternalLabels" => Some(d.external_labels.clone()),
                    "ExternalURL" => Some(Value::Str(d.external_url.clone())),
                    "Value" => Some(Value::Float(d.value)),
                    _ => None,
                };
                if let Some(v) = v {
                    if has_args {
                        return Err(self.errorf(format!("{field} has arguments but cannot be invoked as function")));
                    }
                    return Ok(v);
                }
            }
            Value::Sample(s) => {
                let v = match field {
                    "Labels" => Some(Value::string_map(&s.labels)),
                    "Value" => Some(Value::Float(s.value)),
                    _ => None,
                };
                if let Some(v) = v {
                    if has_args {
                        return Err(self.errorf(format!("{field} has arguments but cannot be invoked as function")));
                    }
                    return Ok(v);
                }
            }
            Value::NilSample if matches!(field, "Labels" | "Value") => {
                return Err(self.errorf(format!("nil pointer evaluating {typ}.{field}")));
            }
            Value::Map(kind, m) => {
                if has_args {
                    return Err(self.errorf(format!("{field} is not a method but has arguments")));
                }
                return Ok(match m.get(field) {
                    Some(v) => v.clone(),
                    None if *kind == MapKind::Strings => Value::str(""),
                    None => Value::Invalid,
                });
            }
            _ => {}
        }
        Err(self.errorf(format!("can't evaluate field {field} in type {typ}")))
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        node: At<'a>,
        args: &'a [Arg],
        final_: Option<Value>,
    ) -> EResult<Value> {
        let Some(spec) = funcs::lookup(name) else {
            return Err(self.errorf(format!("{} is not a defined function", quote(name))));
        };
        if name == "and" || name == "or" {
            self.check_arity(name, spec, args, &final_)?;
            let want = name == "or";
            let mut v = Value::Invalid;
            for a in &args[1..] {
                v = self.eval_arg(dot, Some(Param::Any), a)?;
                if v.truth() == want {
                    return Ok(v);
                }
            }
            if let Some(f) = final_ {
                v = f;
            }
            return Ok(v);
        }
        let values = self.eval_call_args(dot, name, spec, args, final_)?;
        let v = funcs::call(name, values, self.env).map_err(|e| {
            self.at(node);
            self.errorf(format!("error calling {name}: {e}"))
        })?;
        if let Some(s) = v.as_str() {
            if s.len() > MAX_OUTPUT {
                return Err(self.errorf(format!("{name} built a string over {MAX_OUTPUT} bytes")));
            }
        }
        Ok(v)
    }

    fn check_arity(&self, name: &str, spec: funcs::Spec, args: &[Arg], final_: &Option<Value>) -> EResult<()> {
        let given = args.len().saturating_sub(1);
        let num_in = given + usize::from(final_.is_some());
        if spec.variadic.is_some() {
            if num_in < spec.params.len() {
                return Err(self.errorf(format!(
                    "wrong number of args for {name}: want at least {} got {given}",
                    spec.params.len()
                )));
            }
        } else if num_in != spec.params.len() {
            return Err(
                self.errorf(format!("wrong number of args for {name}: want {} got {num_in}", spec.params.len()))
            );
        }
        Ok(())
    }

    /// Evaluates a call's arguments against the parameter types, as Go's
    /// `evalCall` does (`args[0]` is the function's own node).
    fn eval_call_args(
        &mut self,
        dot: &Value,
        name: &str,
        spec: funcs::Spec,
        args: &'a [Arg],
        final_: Option<Value>,
    ) -> EResult<Vec<Value>> {
        self.check_arity(name, spec, args, &final_)?;
        let args = if args.is_empty() { args } else { &args[1..] };
        let num_in = args.len() + usize::from(final_.is_some());
        let num_fixed = if spec.variadic.is_some() { spec.params.len() } else { args.len() };
        let mut out = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            let p = if i < num_fixed { spec.params.get(i).copied() } else { spec.variadic };
            out.push(self.eval_arg(dot, Some(p.unwrap_or(Param::Any)), a)?);
        }
        if let Some(f) = final_ {
            let p = match spec.variadic {
                Some(v) if num_in > num_fixed => v,
                _ => spec.params.get(num_in - 1).copied().unwrap_or(Param::Any),
            };
            out.push(self.validate_type(f, Some(p))?);
        }
        Ok(out)
    }

    fn validate_type(&self, value: Value, typ: Option<Param>) -> EResult<Value> {
        let Some(typ) = typ else {
            return Ok(value);
        };
        match (&value, typ) {
            (Value::Invalid, Param::Any) => Ok(Value::Invalid),
            (Value::Invalid, Param::SamplePtr) => Ok(Value::NilSample),
            (Value::Invalid, Param::QueryResult) => Ok(Value::vector(Vec::new())),
            (Value::Invalid, p) => Err(self.errorf(format!("invalid value; expected {}", p.type_name()))),
            (_, Param::Any)
            | (Value::Str(_), Param::Str)
            | (Value::Sample(_) | Value::NilSample, Param::SamplePtr)
            | (Value::Vector(_), Param::QueryResult) => Ok(value),
            (v, p) => {
                Err(self.errorf(format!("wrong type for value; expected {}; got {}", p.type_name(), v.type_name())))
            }
        }
    }

    fn eval_arg(&mut self, dot: &Value, typ: Option<Param>, n: &'a Arg) -> EResult<Value> {
        self.at(At::Arg(n));
        let v = match n {
            Arg::Dot { .. } => dot.clone(),
            Arg::Nil { .. } => {
                return match typ {
                    Some(Param::Any) => Ok(Value::Invalid),
                    Some(Param::SamplePtr) => Ok(Value::NilSample),
                    Some(Param::QueryResult) => Ok(Value::vector(Vec::new())),
                    Some(p) => Err(self.errorf(format!("cannot assign nil to {}", p.type_name()))),
                    None => Ok(Value::Invalid),
                };
            }
            Arg::Field { idents, .. } => {
                self.eval_field_chain(dot, dot.clone(), idents, std::slice::from_ref(n), None)?
            }
            Arg::Variable { idents, .. } => self.eval_variable(dot, n, idents, &[], None)?,
            Arg::Pipe(p) => self.eval_pipeline(dot, p)?,
            Arg::Identifier { name, .. } => self.eval_function(dot, name, At::Arg(n), std::slice::from_ref(n), None)?,
            Arg::Chain { .. } => self.eval_chain(dot, n, &[], None)?,
            Arg::Bool { val, .. } => {
                return match typ {
                    Some(Param::Any) | None => Ok(Value::Bool(*val)),
                    Some(Param::Str) => Err(self.errorf(format!("expected string; found {n}"))),
                    Some(p) => Err(self.errorf(format!("can't handle {n} for arg of type {}", p.type_name()))),
                };
            }
            Arg::Number { .. } => {
                return match typ {
                    Some(Param::Any) | None => self.ideal_constant(n),
                    Some(Param::Str) => Err(self.errorf(format!("expected string; found {n}"))),
                    Some(p) => Err(self.errorf(format!("can't handle {n} for arg of type {}", p.type_name()))),
                };
            }
            Arg::Str { text, .. } => {
                return match typ {
                    Some(Param::Any | Param::Str) | None => Ok(Value::str(text)),
                    Some(p) => Err(self.errorf(format!("can't handle {n} for arg of type {}", p.type_name()))),
                };
            }
        };
        // `Dot` and the evaluated nodes go through Go's validateType.
        self.validate_type(v, typ)
    }
}

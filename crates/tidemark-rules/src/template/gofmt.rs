//! Go's `fmt.Sprint`, `fmt.Sprintln`, `fmt.Sprintf` and `strconv.Quote`
//! over template values, for the `print`, `printf` and `println` builtins
//! and for error messages. Floats go through `tidemark_promql::go_fmt`.

pub(crate) use tidemark_promql::go_fmt::is_print;
use tidemark_promql::go_fmt::{go_g, go_g_precision, quote_bytes};

use super::value::Value;

/// Go's `strconv.Quote` (`%q` of a string): escapes for quotes,
/// backslashes, control and non-printable characters.
///
/// ```
/// assert_eq!(tidemark_rules::template::go_quote("a\"b\n"), r#""a\"b\n""#);
/// ```
pub fn quote(s: &str) -> String {
    quote_bytes(s.as_bytes())
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = a.as_str().is_some();
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        a.fmt_v(&mut out, 0);
        prev_string = is_string;
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands, then a newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        a.fmt_v(&mut out, 0);
    }
    out.push('\n');
    out
}

#[derive(Default, Clone, Copy)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

impl Flags {
    fn pad(&self, out: &mut String, s: &str) {
        let n = s.chars().count();
        match self.wid {
            Some(w) if w > n => {
                let fill = w - n;
                if self.minus {
                    out.push_str(s);
                    out.extend(std::iter::repeat_n(' ', fill));
                } else {
                    out.extend(std::iter::repeat_n(if self.zero { '0' } else { ' ' }, fill));
                    out.push_str(s);
                }
            }
            _ => out.push_str(s),
        }
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use: `v s q d x X o O b c U
/// t e E f F g G T %`, flags `+ - # 0 space`, width and precision (also
/// as `*`), argument indexes (`%[2]d`). Misuse reads as Go's does:
/// `%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA int=1)`, `%!(NOVERB)`,
/// `%!d(BADINDEX)`, `%!(BADWIDTH)`, `%!(BADPREC)`.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let b = format.as_bytes();
    let end = b.len();
    let mut out = String::new();
    let mut p = Printf { arg_num: 0, reordered: false, good_arg_num: true };
    let mut i = 0;
    while i < end {
        if out.len() > super::exec::MAX_OUTPUT {
            // Widths of up to 1e6 per verb could otherwise build gigabytes;
            // the caller rejects a result this long.
            break;
        }
        p.good_arg_num = true;
        let last = i;
        while i < end && b[i] != b'%' {
            i += 1;
        }
        if i > last {
            out.push_str(&format[last..i]);
        }
        if i >= end {
            break;
        }
        i += 1;
        let mut f = Flags::default();
        while i < end {
            match b[i] {
                b'#' => f.sharp = true,
                b'0' => f.zero = !f.minus,
                b'+' => f.plus = true,
                b'-' => {
                    f.minus = true;
                    f.zero = false;
                }
                b' ' => f.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut after_index;
        (i, after_index) = p.arg_number(format, i, args.len());
        if i < end && b[i] == b'*' {
            i += 1;
            match p.int_from_arg(args) {
                Some(w) if w < 0 => {
                    f.wid = Some(w.unsigned_abs() as usize);
                    f.minus = true;
                    f.zero = false;
                }
                Some(w) => f.wid = Some(w as usize),
                None => out.push_str("%!(BADWIDTH)"),
            }
            after_index = false;
        } else {
            let (w, ni) = parse_num(b, i, end);
            f.wid = w;
            i = ni;
            if after_index && f.wid.is_some() {
                p.good_arg_num = false;
            }
        }
        if i + 1 < end && b[i] == b'.' {
            i += 1;
            if after_index {
                p.good_arg_num = false;
            }
            (i, after_index) = p.arg_number(format, i, args.len());
            if i < end && b[i] == b'*' {
                i += 1;
                match p.int_from_arg(args) {
                    Some(n) if n >= 0 => f.prec = Some(n as usize),
                    Some(_) => f.prec = None,
                    None => out.push_str("%!(BADPREC)"),
                }
                after_index = false;
            } else {
                let (n, ni) = parse_num(b, i, end);
                f.prec = Some(n.unwrap_or(0));
                i = ni;
            }
        }
        if !after_index {
            (i, _) = p.arg_number(format, i, args.len());
        }
        if i >= end {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = format[i..].chars().next().unwrap_or('\u{FFFD}');
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
        } else if !p.good_arg_num {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(BADINDEX)");
        } else if p.arg_num >= args.len() {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(MISSING)");
        } else {
            if verb == 'v' {
                // `%+v` and `%#v` select Go's struct-field and Go-syntax
                // forms; neither shows a sign or prefix on a number.
                f.plus = false;
                f.sharp = false;
            }
            fmt_arg(&mut out, &args[p.arg_num], verb, f, 0);
            p.arg_num += 1;
        }
    }
    if !p.reordered && p.arg_num < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[p.arg_num..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            type_and_value(&mut out, a);
        }
        out.push(')');
    }
    out
}

struct Printf {
    arg_num: usize,
    reordered: bool,
    good_arg_num: bool,
}

impl Printf {
    /// Go's `argNumber`: an explicit `[n]` index at `i`, if any.
    fn arg_number(&mut self, format: &str, i: usize, num_args: usize) -> (usize, bool) {
        let b = format.as_bytes();
        if i >= b.len() || b[i] != b'[' {
            return (i, false);
        }
        self.reordered = true;
        let rest = &b[i..];
        let (index, wid, ok) = parse_arg_number(rest);
        if ok && index >= 0 && (index as usize) < num_args {
            self.arg_num = index as usize;
            return (i + wid, true);
        }
        self.good_arg_num = false;
        (i + wid, ok)
    }

    /// Go's `intFromArg`: an `int` argument for `*`, at most 1e6 in size.
    fn int_from_arg(&mut self, args: &[Value]) -> Option<i64> {
        let v = args.get(self.arg_num)?;
        self.arg_num += 1;
        match v {
            Value::Int(n) if n.unsigned_abs() <= 1_000_000 => Some(*n),
            Value::Byte(n) => Some(i64::from(*n)),
            _ => None,
        }
    }
}

fn parse_arg_number(b: &[u8]) -> (i64, usize, bool) {
    if b.len() < 3 {
        return (0, 1, false);
    }
    for i in 1..b.len() {
        if b[i] == b']' {
            let (n, ni) = parse_num(b, 1, i);
            return match n {
                Some(n) if ni == i => (n as i64 - 1, i + 1, true),
                _ => (0, i + 1, false),
            };
        }
    }
    (0, 1, false)
}

/// Go's `parsenum`: digits from `start`; a number over 1e6 consumes the
/// rest of the format and counts as none.
fn parse_num(b: &[u8], start: usize, end: usize) -> (Option<usize>, usize) {
    if start >= end {
        return (None, end);
    }
    let mut n: usize = 0;
    let mut any = false;
    let mut i = start;
    while i < end && b[i].is_ascii_digit() {
        if n > 1_000_000 {
            return (None, end);
        }
        n = n * 10 + (b[i] - b'0') as usize;
        any = true;
        i += 1;
    }
    (any.then_some(n), i)
}

fn bad_verb(out: &mut String, a: &Value, verb: char) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    type_and_value(out, a);
    out.push(')');
}

/// Go's `type=value` inside `%!verb(…)` and `%!(EXTRA …)`; `<nil>` for nil.
fn type_and_value(out: &mut String, a: &Value) {
    if let Value::Invalid = a {
        out.push_str("<nil>");
    } else {
        out.push_str(a.type_name());
        out.push('=');
        a.fmt_v(out, 0);
    }
}

fn fmt_arg(out: &mut String, a: &Value, verb: char, f: Flags, depth: usize) {
    if verb == 'T' {
        f.pad(out, a.type_name());
        return;
    }
    match a {
        Value::Invalid | Value::NilSample => match verb {
            'v' => f.pad(out, "<nil>"),
            _ => bad_verb(out, a, verb),
        },
        Value::Bool(b) => match verb {
            't' | 'v' => f.pad(out, if *b { "true" } else { "false" }),
            _ => bad_verb(out, a, verb),
        },
        Value::Int(i) => fmt_int(out, a, *i as i128, verb, f),
        Value::Byte(b) => fmt_int(out, a, *b as i128, verb, f),
        Value::Float(x) => fmt_float(out, a, *x, verb, f),
        Value::Str(s) | Value::Html(s) => fmt_str(out, a, s, verb, f),
        Value::Time(_) => match verb {
            'v' | 's' | 'x' | 'X' | 'q' => fmt_str(out, a, &a.to_v(), verb, f),
            _ => bad_verb(out, a, verb),
        },
        Value::Map(_, m) => {
            out.push_str("map[");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_arg(out, &Value::str(k), verb, f, depth + 1);
                out.push(':');
                fmt_arg(out, v, verb, f, depth + 1);
            }
            out.push(']');
        }
        Value::Sample(s) if depth == 0 => {
            out.push_str("&{");
            fmt_arg(out, &Value::string_map(&s.labels), verb, f, depth + 1);
            out.push(' ');
            fmt_arg(out, &Value::Float(s.value), verb, f, depth + 1);
            out.push('}');
        }
        Value::Data(d) => {
            out.push('{');
            fmt_arg(out, &d.labels, verb, f, depth + 1);
            out.push(' ');
            fmt_arg(out, &d.external_labels, verb, f, depth + 1);
            out.push(' ');
            fmt_arg(out, &Value::Str(d.external_url.clone()), verb, f, depth + 1);
            out.push(' ');
            fmt_arg(out, &Value::Float(d.value), verb, f, depth + 1);
            out.push('}');
        }
        Value::Vector(v) => {
            out.push('[');
            for (i, s) in v.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_arg(out, &Value::Sample(s.clone()), verb, f, depth + 1);
            }
            out.push(']');
        }
        Value::Sample(_) => {
            let mut s = String::new();
            a.fmt_v(&mut s, depth);
            f.pad(out, &s);
        }
    }
}

fn fmt_int(out: &mut String, a: &Value, i: i128, verb: char, f: Flags) {
    let neg = i < 0;
    let m = i.unsigned_abs();
    let digits = match verb {
        'd' | 'v' => m.to_string(),
        'x' => format!("{m:x}"),
        'X' => format!("{m:X}"),
        'o' | 'O' => format!("{m:o}"),
        'b' => format!("{m:b}"),
        'c' => {
            let c = char::from_u32(i as u32).filter(|_| (0..=0x10FFFF).contains(&i)).unwrap_or('\u{FFFD}');
            f.pad(out, &c.to_string());
            return;
        }
        'q' => {
            let c = char::from_u32(i as u32).filter(|_| (0..=0x10FFFF).contains(&i)).unwrap_or('\u{FFFD}');
            let q = quote(&c.to_string());
            f.pad(out, &format!("'{}'", &q[1..q.len() - 1].replace("\\\"", "\"").replace('\'', "\\'")));
            return;
        }
        'U' => {
            f.pad(out, &format!("U+{m:04X}"));
            return;
        }
        _ => return bad_verb(out, a, verb),
    };
    let mut digits = digits;
    if let Some(p) = f.prec {
        if p == 0 && m == 0 {
            digits.clear();
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    let prefix = match (f.sharp, verb) {
        (true, 'x') => "0x",
        (true, 'X') => "0X",
        (true, 'o') if !digits.starts_with('0') => "0",
        (true, 'b') => "0b",
        (_, 'O') => "0o",
        _ => "",
    };
    let sign = if neg {
        "-"
    } else if f.plus {
        "+"
    } else if f.space {
        " "
    } else {
        ""
    };
    let body = format!("{prefix}{digits}");
    if f.zero && f.prec.is_none() && !f.minus {
        if let Some(w) = f.wid {
            let len = sign.len() + body.len();
            if w > len {
                out.push_str(sign);
                out.extend(std::iter::repeat_n('0', w - len));
                out.push_str(&body);
                return;
            }
        }
    }
    let mut g = f;
    g.zero = false;
    g.pad(out, &format!("{sign}{body}"));
}

/// Rust's `{:e}` exponent (`e6`, `e-5`) in Go's form (`e+06`, `e-05`).
fn go_exponent(s: &str, upper: bool) -> String {
    let (m, e) = s.split_once('e').unwrap_or((s, "0"));
    let (sign, digits) = match e.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', e),
    };
    let e = if upper { 'E' } else { 'e' };
    format!("{m}{e}{sign}{digits:0>2}")
}

fn fmt_float(out: &mut String, a: &Value, x: f64, verb: char, f: Flags) {
    let body = if x.is_nan() {
        "NaN".to_string()
    } else if x.is_infinite() {
        "Inf".to_string()
    } else {
        let ax = x.abs();
        match verb {
            'v' | 'g' => match f.prec {
                None => go_g(ax),
                Some(p) => go_g_precision(ax, p.max(1)),
            },
            'G' => match f.prec {
                None => go_g(ax),
                Some(p) => go_g_precision(ax, p.max(1)),
            }
            .to_uppercase(),
            'f' | 'F' => format!("{:.*}", f.prec.unwrap_or(6), ax),
            'e' | 'E' => go_exponent(&format!("{:.*e}", f.prec.unwrap_or(6), ax), verb == 'E'),
            _ => return bad_verb(out, a, verb),
        }
    };
    if !matches!(verb, 'v' | 'g' | 'G' | 'f' | 'F' | 'e' | 'E') {
        return bad_verb(out, a, verb);
    }
    let neg = x.is_sign_negative() && !x.is_nan();
    let sign = if neg {
        "-"
    } else if x.is_infinite() || f.plus {
        "+"
    } else if f.space {
        " "
    } else {
        ""
    };
    if !x.is_finite() {
        let mut g = f;
        g.zero = false;
        g.pad(out, &format!("{sign}{body}"));
        return;
    }
    if f.zero && !f.minus {
        if let Some(w) = f.wid {
            let len = sign.len() + body.len();
            if w > len {
                out.push_str(sign);
                out.extend(std::iter::repeat_n('0', w - len));
                out.push_str(&body);
                return;
            }
        }
    }
    f.pad(out, &format!("{sign}{body}"));
}

fn fmt_str(out: &mut String, a: &Value, s: &str, verb: char, f: Flags) {
    let s: String = match f.prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    };
    match verb {
        'v' | 's' => f.pad(out, &s),
        'q' => {
            if f.sharp && !s.contains('`') && s.chars().all(|c| c == '\t' || is_print(c)) {
                f.pad(out, &format!("`{s}`"));
            } else {
                f.pad(out, &quote(&s));
            }
        }
        'x' | 'X' => {
            let mut h = String::new();
            for (i, b) in s.bytes().enumerate() {
                if f.space && i > 0 {
                    h.push(' ');
                }
                if f.sharp && (f.space || i == 0) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    h.push_str(&format!("{b:02x}"));
                } else {
                    h.push_str(&format!("{b:02X}"));
                }
            }
            f.pad(out, &h);
        }
        _ => bad_verb(out, a, verb),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_like_go() {
        let v = |x: f64| Value::Float(x);
        assert_eq!(sprintf("%.2f", &[v(1.005)]), "1.00");
        assert_eq!(sprintf("%5.1f|%-6d|%05d", &[v(2.25), Value::Int(42), Value::Int(-42)]), "  2.2|42    |-0042");
        assert_eq!(sprintf("%d", &[Value::str("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%s %s", &[Value::str("x")]), "x %!s(MISSING)");
        assert_eq!(sprintf("%s", &[Value::str("x"), Value::Int(1)]), "x%!(EXTRA int=1)");
        assert_eq!(sprintf("%e", &[v(123456.0)]), "1.234560e+05");
        assert_eq!(sprintf("%g %v", &[v(1e21), v(f64::NAN)]), "1e+21 NaN");
        assert_eq!(sprintf("%f %+.1f %05.1f", &[v(f64::INFINITY), v(2.0), v(f64::NEG_INFINITY)]), "+Inf +2.0  -Inf");
        assert_eq!(sprintf("%q", &[Value::str("a\"b\n")]), "\"a\\\"b\\n\"");
        assert_eq!(sprintf("100%%", &[]), "100%");
        assert_eq!(sprintf("%", &[]), "%!(NOVERB)");
        assert_eq!(sprintf("%x %X", &[Value::Int(255), Value::str("hi")]), "ff 6869");
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2), Value::str("a"), Value::Int(3)]), "1 2a3");
        assert_eq!(sprintln(&[Value::str("a"), Value::str("b")]), "a b\n");
    }
}

//! Rule file patterns with Go's `filepath.Glob` semantics, as Prometheus
//! expands `rule_files`: `*` (any run of characters but `/`), `?` (one
//! character but `/`), `[...]` classes (`^` negates, `a-z` ranges), `\`
//! escapes. No `**`, and a leading dot is matched like any character. A
//! pattern without those characters names itself if the path exists; a
//! pattern that matches nothing is not an error; a malformed one is.

use std::path::PathBuf;

use super::error::{RuleFileError, RuleFileErrorKind, RuleFileErrors};

/// Expands glob patterns into the files they match, sorted and without
/// duplicates.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// for name in ["a.yml", "b.yml", "c.txt"] {
///     std::fs::write(dir.path().join(name), "").unwrap();
/// }
/// let pattern = format!("{}/*.yml", dir.path().display());
/// let files = tidemark_rules::expand_globs(&[pattern.clone(), pattern]).unwrap();
/// assert_eq!(files, vec![dir.path().join("a.yml"), dir.path().join("b.yml")]);
///
/// assert!(tidemark_rules::expand_globs(&["rules/[z-a".to_string()]).is_err());
/// ```
pub fn expand_globs(patterns: &[String]) -> Result<Vec<PathBuf>, RuleFileErrors> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for pattern in patterns {
        match glob(pattern) {
            Ok(paths) => out.extend(paths.into_iter().map(PathBuf::from)),
            Err(BadPattern) => errors.push(RuleFileError {
                file: pattern.clone(),
                position: None,
                position_alt: None,
                group: None,
                rule: None,
                kind: RuleFileErrorKind::BadPattern(pattern.clone()),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(RuleFileErrors { errors });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A malformed pattern (Go's `filepath.ErrBadPattern`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadPattern;

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Go's `filepath.Glob`.
fn glob(pattern: &str) -> Result<Vec<String>, BadPattern> {
    glob_depth(pattern, 0)
}

fn glob_depth(pattern: &str, depth: usize) -> Result<Vec<String>, BadPattern> {
    // Every pattern is checked whole first, so a bad one is an error even
    // where no directory would have been read.
    matches(pattern, "")?;
    if depth > 10_000 {
        return Err(BadPattern);
    }
    if !has_meta(pattern) {
        return Ok(if std::fs::symlink_metadata(pattern).is_ok() { vec![pattern.to_string()] } else { Vec::new() });
    }
    let (dir, file) = match pattern.rfind('/') {
        Some(i) => (&pattern[..=i], &pattern[i + 1..]),
        None => ("", pattern),
    };
    let dir = match dir {
        "" => ".",
        "/" => "/",
        d => &d[..d.len() - 1],
    };
    if !has_meta(dir) {
        return read_matching(dir, file, Vec::new());
    }
    if dir == pattern {
        return Err(BadPattern);
    }
    let mut out = Vec::new();
    for d in glob_depth(dir, depth + 1)? {
        out = read_matching(&d, file, out)?;
    }
    Ok(out)
}

/// Appends the entries of `dir` whose names match `pattern`, in name
/// order; a directory that cannot be read contributes nothing.
fn read_matching(dir: &str, pattern: &str, mut out: Vec<String>) -> Result<Vec<String>, BadPattern> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(out) };
    let mut names: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    names.sort();
    for name in names {
        if matches(pattern, &name)? {
            out.push(join(dir, &name));
        }
    }
    Ok(out)
}

/// Go's `filepath.Join(dir, name)` for a plain name: `.` disappears.
fn join(dir: &str, name: &str) -> String {
    match dir {
        "." => name.to_string(),
        d if d.ends_with('/') => format!("{d}{name}"),
        d => format!("{d}/{name}"),
    }
}

/// One element of a pattern.
#[derive(Debug)]
enum Item {
    Star,
    Any,
    Char(char),
    Class { negated: bool, ranges: Vec<(char, char)> },
}

/// Compiles a pattern, or says it is malformed.
fn compile(pattern: &str) -> Result<Vec<Item>, BadPattern> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                items.push(Item::Star);
                i += 1;
            }
            '?' => {
                items.push(Item::Any);
                i += 1;
            }
            '\\' => {
                let c = *chars.get(i + 1).ok_or(BadPattern)?;
                items.push(Item::Char(c));
                i += 2;
            }
            '[' => {
                i += 1;
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    if chars.get(i) == Some(&']') && !ranges.is_empty() {
                        i += 1;
                        break;
                    }
                    let lo = class_char(&chars, &mut i)?;
                    let hi = if chars.get(i) == Some(&'-') {
                        i += 1;
                        class_char(&chars, &mut i)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                items.push(Item::Class { negated, ranges });
            }
            c => {
                items.push(Item::Char(c));
                i += 1;
            }
        }
    }
    Ok(items)
}

/// One character of a class (Go's `getEsc`): not `-` or `]` unescaped, and
/// something must follow it inside the pattern.
fn class_char(chars: &[char], i: &mut usize) -> Result<char, BadPattern> {
    let mut c = *chars.get(*i).ok_or(BadPattern)?;
    if c == '-' || c == ']' {
        return Err(BadPattern);
    }
    if c == '\\' {
        *i += 1;
        c = *chars.get(*i).ok_or(BadPattern)?;
    }
    *i += 1;
    if *i >= chars.len() {
        return Err(BadPattern);
    }
    Ok(c)
}

/// Go's `filepath.Match(pattern, name)`.
pub(crate) fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let items = compile(pattern)?;
    let name: Vec<char> = name.chars().collect();
    // Iterative wildcard matching: on a mismatch, go back to the last `*`
    // and let it take one more character (never a separator).
    let (mut p, mut n) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    loop {
        if p < items.len() {
            match &items[p] {
                Item::Star => {
                    back = Some((p, n));
                    p += 1;
                    continue;
                }
                item if n < name.len() && one(item, name[n]) => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        } else if n == name.len() {
            return Ok(true);
        }
        match back {
            Some((bp, bn)) if bn < name.len() && name[bn] != '/' => {
                back = Some((bp, bn + 1));
                p = bp + 1;
                n = bn + 1;
            }
            _ => return Ok(false),
        }
    }
}

fn one(item: &Item, c: char) -> bool {
    match item {
        Item::Star => false,
        Item::Any => c != '/',
        Item::Char(x) => *x == c,
        Item::Class { negated, ranges } => ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_like_go() {
        // Cases from Go's path/filepath match tests.
        let cases: &[(&str, &str, Result<bool, BadPattern>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(BadPattern)),
            ("[-]", "-", Err(BadPattern)),
            ("[x-]", "x", Err(BadPattern)),
            ("[x-]", "-", Err(BadPattern)),
            ("[x-]", "z", Err(BadPattern)),
            ("[-x]", "x", Err(BadPattern)),
            ("[-x]", "-", Err(BadPattern)),
            ("[-x]", "a", Err(BadPattern)),
            ("\\", "a", Err(BadPattern)),
            ("[a-b-c]", "a", Err(BadPattern)),
            ("[", "a", Err(BadPattern)),
            ("[^", "a", Err(BadPattern)),
            ("[^bc", "a", Err(BadPattern)),
            ("a[", "a", Err(BadPattern)),
            ("a[", "ab", Err(BadPattern)),
            ("a[", "x", Err(BadPattern)),
            ("a/b[", "x", Err(BadPattern)),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(&matches(pattern, name), want, "Match({pattern:?}, {name:?})");
        }
    }

    #[test]
    fn glob_walks_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["a", "b", "c.d"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        for f in ["a/1.yml", "a/.hidden.yml", "b/2.yml", "b/2.yaml", "c.d/3.yml", "top.yml"] {
            std::fs::write(root.join(f), "").unwrap();
        }
        let r = root.display().to_string();
        let got = |p: &str| {
            glob(&format!("{r}/{p}")).unwrap().into_iter().map(|s| s[r.len() + 1..].to_string()).collect::<Vec<_>>()
        };
        assert_eq!(got("*/*.yml"), ["a/.hidden.yml", "a/1.yml", "b/2.yml", "c.d/3.yml"]);
        assert_eq!(got("?/2.*"), ["b/2.yaml", "b/2.yml"]);
        assert_eq!(got("top.yml"), ["top.yml"]);
        assert!(got("missing.yml").is_empty());
        assert!(got("*/none*").is_empty());
        assert_eq!(got("[ab]"), ["a", "b"]);
        assert_eq!(glob(&format!("{r}/x/[")), Err(BadPattern));
        let err = expand_globs(&["rules/*.yml".to_string(), "rules/[z-".to_string()]).unwrap_err();
        assert_eq!(err.to_string(), "rules/[z-: syntax error in pattern");
        // expand_globs: sorted across patterns and deduplicated.
        let files = expand_globs(&[format!("{r}/b/*.yml"), format!("{r}/a/*.yml"), format!("{r}/*/2.yml")]).unwrap();
        assert_eq!(files, vec![root.join("a/.hidden.yml"), root.join("a/1.yml"), root.join("b/2.yml")]);
    }
}

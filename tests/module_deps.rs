//! The module order stated in `src/lib.rs` holds: every file under `src/` names (in code, as
//! `crate::x` or a `super::` path that leaves its module) only modules listed before its own.
//! The web server in particular never names the daemon, and nothing below the web names it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The crate's source directory.
fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The order from the `Module order:` paragraph of the crate docs.
fn stated_order() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut lines = lib
        .lines()
        .skip_while(|l| !l.starts_with("//! Module order:"));
    let mut text = String::new();
    for line in lines.by_ref() {
        let line = line.trim_start_matches("//!").trim();
        if line.is_empty() {
            break;
        }
        text.push_str(line.trim_start_matches("Module order:"));
        text.push(' ');
    }
    assert!(!text.is_empty(), "src/lib.rs states no `Module order:`");
    text.split('→')
        .map(|m| m.trim().trim_matches('`').to_string())
        .collect()
}

/// The top-level modules `src/lib.rs` declares.
fn declared_modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect()
}

/// Every `.rs` file of the library (the binaries under `src/bin` and `src/main.rs` excluded),
/// relative to `src/`.
fn library_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files
        .into_iter()
        .map(|p| p.strip_prefix(src()).unwrap().to_path_buf())
        .filter(|p| p != Path::new("lib.rs") && p != Path::new("main.rs"))
        .collect()
}

/// The top-level module a file belongs to, and how deep its own module sits (`a.rs` and
/// `a/mod.rs` are 1, `a/b.rs` is 2).
fn module_of(file: &Path) -> (String, usize) {
    let parts: Vec<String> = file
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let depth = if parts.last().is_some_and(|p| p == "mod") {
        parts.len() - 1
    } else {
        parts.len()
    };
    (parts[0].clone(), depth)
}

/// `text` with comments and string and character literals blanked out, so only code is
/// searched (doc links may point anywhere; they create no dependency).
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&b, i) {
            // Raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < b.len() {
                if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// True when the character before `i` continues an identifier (so `r` is not a raw-string
/// prefix, as in `for"`).
fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// The top-level modules `code` (of a file whose module sits `depth` deep) names: `crate::x`
/// and `super::`-chains that climb out to the crate root. `crate::{` groups are reported as
/// `{`, so the check asks for one path per module instead of parsing them.
fn named_modules(code: &str, depth: usize) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let ident_at = |start: usize| -> String {
        code[start..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '{')
            .collect::<String>()
    };
    let is_boundary =
        |i: usize| i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        if rest.starts_with("crate::") && is_boundary(i) && !code[..i].ends_with('$') {
            let name = ident_at(i + "crate::".len());
            found.push(if name.starts_with('{') {
                "{".to_string()
            } else {
                name
            });
            i += "crate::".len();
        } else if rest.starts_with("super::") && is_boundary(i) {
            let mut j = i;
            let mut ups = 0;
            while code[j..].starts_with("super::") {
                ups += 1;
                j += "super::".len();
            }
            if ups >= depth {
                found.push(ident_at(j));
            }
            i = j;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// Every file's uses that break `order`, as readable lines.
fn violations(order: &[String]) -> Vec<String> {
    let position = |m: &str| order.iter().position(|o| o == m);
    let mut bad = Vec::new();
    for file in library_files() {
        let (module, depth) = module_of(&file);
        let Some(own) = position(&module) else {
            bad.push(format!(
                "{}: module `{module}` is not in the order",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(src().join(&file)).unwrap();
        for target in named_modules(&code_only(&text), depth) {
            if target == "{" {
                bad.push(format!(
                    "{}: `crate::{{..}}` groups several modules; write one path per module",
                    file.display()
                ));
                continue;
            }
            if target == module {
                continue;
            }
            match position(&target) {
                Some(t) if t > own => bad.push(format!(
                    "{}: `{module}` uses `crate::{target}`, which comes after it",
                    file.display()
                )),
                _ => {}
            }
        }
    }
    bad.sort();
    bad.dedup();
    bad
}

#[test]
fn the_stated_order_lists_every_module_once() {
    let order = stated_order();
    let listed: BTreeSet<String> = order.iter().cloned().collect();
    assert_eq!(
        listed.len(),
        order.len(),
        "a module is listed twice: {order:?}"
    );
    assert_eq!(
        listed,
        declared_modules(),
        "lib.rs's order vs its `pub mod`s"
    );
}

#[test]
fn every_file_uses_only_modules_before_its_own() {
    let bad = violations(&stated_order());
    assert!(bad.is_empty(), "module order broken:\n{}", bad.join("\n"));
}

#[test]
fn the_web_never_names_the_daemon() {
    // Comments included: the web is written against `crate::handles`, not the daemon.
    for file in library_files() {
        if module_of(&file).0 != "web" {
            continue;
        }
        let text = std::fs::read_to_string(src().join(&file)).unwrap();
        assert!(
            !text.contains("crate::daemon"),
            "{} names crate::daemon",
            file.display()
        );
    }
}

#[test]
fn the_checker_sees_code_and_skips_comments_and_strings() {
    let code = code_only(
        "use crate::web::AppState; // crate::daemon\n\
         /* crate::daemon */ let s = \"crate::daemon\"; let r = r#\"crate::daemon\"#;\n\
         let c = '\"'; fn f<'a>(x: &'a str) { crate::ring::X; }\n",
    );
    assert_eq!(named_modules(&code, 2), ["web", "ring"]);
    assert_eq!(named_modules("use super::super::web::X;", 2), ["web"]);
    assert!(named_modules("use super::sibling;", 2).is_empty());
    assert_eq!(named_modules("use crate::{web, ring};", 1), ["{"]);
    assert_eq!(
        module_of(Path::new("output/live/client.rs")),
        ("output".into(), 3)
    );
    assert_eq!(
        module_of(Path::new("output/live/mod.rs")),
        ("output".into(), 2)
    );
    assert_eq!(module_of(Path::new("secret.rs")), ("secret".into(), 1));
}

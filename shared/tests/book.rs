//! Every `{{#include path:anchor}}` in the book resolves to non-empty text.
//!
//! mdBook only warns when an include is broken and renders an empty code
//! block; this test makes it a failure. It also refuses line-range
//! includes, which silently show the wrong lines once the code moves.

use std::fs;
use std::path::{Path, PathBuf};

fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src")
}

fn chapters(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            chapters(&path, found);
        } else if path.extension().is_some_and(|e| e == "md") {
            found.push(path);
        }
    }
}

/// Every `{{#include …}}` or `{{#rustdoc_include …}}` argument in `text`,
/// except those escaped as `\{{#…}}`, which mdBook prints as they are.
fn includes(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{#") {
        let escaped = rest[..start].ends_with('\\');
        let after = &rest[start + 3..];
        let end = after.find("}}").expect("an unclosed {{# in the book");
        let mut words = after[..end].split_whitespace();
        if let (false, Some("include" | "rustdoc_include"), Some(arg)) =
            (escaped, words.next(), words.next())
        {
            found.push(arg.to_owned());
        }
        rest = &after[end..];
    }
    found
}

/// The text between `ANCHOR: name` and `ANCHOR_END: name`, other anchor
/// lines left out, as mdBook shows it.
fn anchored<'a>(source: &'a str, name: &str) -> Option<Vec<&'a str>> {
    let marks = |line: &str, tag: &str| {
        line.split_once(tag).is_some_and(|(_, after)| {
            after.trim_start().split(|c: char| c.is_whitespace()).next()
                == Some(name)
        })
    };
    let mut lines = source.lines();
    lines.by_ref().find(|line| marks(line, "ANCHOR:"))?;
    let mut body = Vec::new();
    for line in lines {
        if marks(line, "ANCHOR_END:") {
            return Some(body);
        }
        if !line.contains("ANCHOR:") && !line.contains("ANCHOR_END:") {
            body.push(line);
        }
    }
    None
}

fn check(chapter: &Path, arg: &str) -> Result<(), String> {
    let (file, anchor) = match arg.split_once(':') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (arg, None),
    };
    let path = chapter.parent().unwrap().join(file);
    let source = fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = match anchor {
        None => source.lines().collect(),
        Some(a) if a.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
            return Err("a line range: use a named anchor".into());
        }
        Some(a) => anchored(&source, a)
            .ok_or_else(|| format!("no anchor '{a}' in {}", path.display()))?,
    };
    if text.iter().all(|line| line.trim().is_empty()) {
        return Err("resolves to nothing".into());
    }
    Ok(())
}

#[test]
fn every_include_in_the_book_resolves_to_text() {
    let mut files = Vec::new();
    chapters(&book_src(), &mut files);
    assert!(files.len() > 3, "no book found at {}", book_src().display());
    let mut broken = Vec::new();
    let mut seen = 0;
    for chapter in &files {
        let text = fs::read_to_string(chapter).unwrap();
        for arg in includes(&text) {
            seen += 1;
            if let Err(why) = check(chapter, &arg) {
                broken.push(format!(
                    "{}: {{{{#include {arg}}}}}: {why}",
                    chapter.display()
                ));
            }
        }
    }
    assert!(seen > 0, "the book includes no code at all");
    assert!(
        broken.is_empty(),
        "broken includes:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn the_checker_catches_missing_and_empty_anchors() {
    let source = "a\n// ANCHOR: full\nlet x = 1;\n// ANCHOR_END: full\n\
                  // ANCHOR: empty\n\n// ANCHOR_END: empty\n";
    assert_eq!(anchored(source, "full"), Some(vec!["let x = 1;"]));
    assert_eq!(anchored(source, "missing"), None);
    assert_eq!(anchored(source, "empty"), Some(vec![""]));
    assert_eq!(anchored(source, "ful"), None, "no prefix matches");
    let book = "x {{#include ../a.rs:one}} y {{#rustdoc_include b.rs}} \\{{#include no}}";
    assert_eq!(includes(book), ["../a.rs:one", "b.rs"]);
}

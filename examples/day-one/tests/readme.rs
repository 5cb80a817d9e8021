//! The README's "Day one" section shows this example's code as it is:
//! each `rust,ignore` block there names its file on its first line
//! (`// From examples/day-one/…`), and the rest of the block must be in
//! that file, verbatim.

#[test]
fn the_readme_shows_the_day_one_code_as_it_is() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let section = readme
        .split("## Day one")
        .nth(1)
        .expect("a Day one section in the README");
    let section = section.split("\n## ").next().unwrap();
    let mut files = Vec::new();
    let mut rest = section;
    while let Some(start) = rest.find("```rust,ignore\n") {
        let body = &rest[start + "```rust,ignore\n".len()..];
        let end = body.find("\n```").expect("an unterminated block");
        let (first, code) = body[..end].split_once('\n').unwrap();
        rest = &body[end..];
        let path = first
            .strip_prefix("// From ")
            .unwrap_or_else(|| panic!("a block whose first line is not `// From PATH`: {first}"));
        let source = std::fs::read_to_string(format!("{root}/{path}")).unwrap();
        assert!(
            source.contains(code),
            "the README shows code that is not in {path} (any more):\n{code}"
        );
        files.push(path);
    }
    for file in ["src/main.rs", "src/lib.rs", "tests/day_one.rs"] {
        assert!(
            files.contains(&format!("examples/day-one/{file}").as_str()),
            "the README shows nothing of {file}: {files:?}"
        );
    }
}

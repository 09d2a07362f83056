//! The option reference, `docs/configuration.md`, made from the binaries' own `--help` (clap's long help), so it
//! cannot drift from the code. Each binary's unit test renders its command with [`help_markdown`] and compares it
//! with its block of the file ([`check_generated`]); `make docs` (the same tests with `CXR_UPDATE_DOCS=1`) rewrites
//! the blocks instead.

use std::path::Path;

/// The long help of `command` and of each of its subcommands (nested ones included, `finetune nih`), as markdown
/// sections with the text in code fences. Environment values are hidden, so the text is the same whatever
/// variables are set where it is made.
pub fn help_markdown(command: clap::Command) -> String {
    let mut command = hide_env_values(command);
    command.build();
    let name = command.get_name().to_string();
    let mut out = format!(
        "## `{name}`

```text
{}```
",
        command.render_long_help()
    );
    subcommand_sections(&mut command, &name, 3, &mut out);
    out
}

/// `command` with the environment values of its arguments and of every subcommand's hidden.
fn hide_env_values(command: clap::Command) -> clap::Command {
    let names: Vec<String> = command.get_subcommands().map(|s| s.get_name().to_string()).collect();
    let command = command.mut_args(|arg| arg.hide_env_values(true));
    names.iter().fold(command, |command, name| command.mut_subcommand(name, hide_env_values))
}

/// One section per subcommand of `command` (titled by its full path, one heading level deeper per nesting), each
/// followed by its own subcommands' sections.
fn subcommand_sections(command: &mut clap::Command, path: &str, level: usize, out: &mut String) {
    for sub in command.get_subcommands_mut().filter(|s| s.get_name() != "help") {
        let title = format!("{path} {}", sub.get_name());
        out.push_str(&format!("\n{} `{title}`\n\n```text\n{}```\n", "#".repeat(level), sub.render_long_help()));
        subcommand_sections(sub, &title, level + 1, out);
    }
}

/// Compares `body` with the block `<!-- generated: NAME -->` … `<!-- /generated: NAME -->` of the file at `path`;
/// with `CXR_UPDATE_DOCS` set, writes `body` into the block instead. The error says how to regenerate.
pub fn check_generated(path: &Path, name: &str, body: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (open, close) = (format!("<!-- generated: {name} -->\n"), format!("<!-- /generated: {name} -->"));
    let start = text.find(&open).ok_or_else(|| format!("{} has no `{}` block", path.display(), open.trim()))?;
    let end =
        text[start..].find(&close).map(|n| start + n).ok_or_else(|| format!("no `{close}` in {}", path.display()))?;
    let current = &text[start + open.len()..end];
    if current == body {
        return Ok(());
    }
    if std::env::var_os("CXR_UPDATE_DOCS").is_some() {
        let updated = format!("{}{open}{body}{}", &text[..start], &text[end..]);
        return std::fs::write(path, updated).map_err(|e| format!("{}: {e}", path.display()));
    }
    Err(format!("{} is out of date for `{name}`: run `make docs` and commit the result", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_compared_and_rewritten() {
        let path = std::env::temp_dir().join(format!("cxr-clidoc-{}.md", std::process::id()));
        std::fs::write(&path, "# Title\n<!-- generated: tool -->\nold\n<!-- /generated: tool -->\ntail\n").unwrap();
        assert!(check_generated(&path, "tool", "old\n").is_ok());
        let stale = check_generated(&path, "tool", "new\n").unwrap_err();
        assert!(stale.contains("make docs"), "{stale}");
        assert!(check_generated(&path, "other", "x").unwrap_err().contains("no `<!-- generated: other -->` block"));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn subcommands_get_their_own_sections() {
        let command = clap::Command::new("tool")
            .about("Does things")
            .subcommand(clap::Command::new("run").about("Runs").arg(clap::Arg::new("fast").long("fast")))
            .subcommand(clap::Command::new("data").about("Datasets").subcommand(
                clap::Command::new("nih").about("NIH").arg(clap::Arg::new("csv").long("csv").env("TOOL_CSV")),
            ));
        let markdown = help_markdown(command);
        assert!(markdown.starts_with("## `tool`\n\n```text\nDoes things"), "{markdown}");
        assert!(markdown.contains("### `tool run`") && markdown.contains("--fast"), "{markdown}");
        assert!(!markdown.contains("### `tool help`"), "{markdown}");
        assert!(markdown.contains("#### `tool data nih`") && markdown.contains("--csv"), "{markdown}");
        assert!(markdown.contains("Usage: tool data nih"), "{markdown}");
        assert!(!markdown.contains("#### `tool data help`"), "{markdown}");
    }
}

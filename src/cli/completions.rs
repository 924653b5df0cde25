//! `completions` and `manpage`: generated from the command line's definition, so they never
//! drift from it.

use std::path::Path;

use clap::CommandFactory;
use mde_alerts::error::Error;

use super::Cli;

/// The completion script for `shell`. clap_complete's bash script labels each subcommand's case
/// with the binary name mangled one way (`mde__subcmd__alerts__subcmd__export`) and sets `cmd` to
/// it mangled another (`mde__alerts__subcmd__export`) when the name has a hyphen, so nothing past
/// the first word completed; the labels are rewritten to the name `cmd` is set to.
pub(crate) fn script(shell: clap_complete::Shell) -> String {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let bin = "mde-alerts";
    clap_complete::generate(shell, &mut cmd, bin, &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    if shell != clap_complete::Shell::Bash {
        return text;
    }
    let labelled = bin.replace('-', "__subcmd__");
    let set = bin.replace('-', "__");
    text.replace(&labelled, &set)
}

/// The man pages: `mde-alerts.1` to standard output, or into `dir` with a page for every
/// subcommand, which the main page's SUBCOMMANDS section names (`mde-alerts-poll(1)`).
pub(crate) fn manpages(dir: Option<&Path>) -> Result<(), Error> {
    // No `help` subcommand in the pages: `mde-alerts-help(1)` would name a page of nothing.
    let cmd = Cli::command().disable_help_subcommand(true);
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(Error::io(format!("cannot create {}", dir.display())))?;
            clap_mangen::generate_to(cmd, dir).map_err(Error::io(format!(
                "cannot write the man pages into {}",
                dir.display()
            )))
        }
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .map_err(Error::io("cannot write the man page")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What bash offers after `words` (the last one being completed), with the script sourced.
    fn bash_offers(words: &[&str]) -> Vec<String> {
        let script = script(clap_complete::Shell::Bash);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mde-alerts.bash");
        std::fs::write(&file, script).unwrap();
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let n = words.len();
        let prev = if n >= 2 { words[n - 2] } else { "" };
        let run = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _mde__alerts mde-alerts '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display(),
            quoted.join(" "),
            n - 1,
            words[n - 1],
            prev
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &run])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn bash_completes_a_subcommands_options() {
        let offered = bash_offers(&["mde-alerts", "export", "--"]);
        for want in ["--out", "--name", "--format", "--shape", "--config"] {
            assert!(
                offered.iter().any(|o| o == want),
                "{want} not in {offered:?}"
            );
        }
        assert!(
            !offered.iter().any(|o| o == "--json"),
            "status's option: {offered:?}"
        );
    }

    #[test]
    fn bash_completes_nested_subcommands_and_values() {
        let offered = bash_offers(&["mde-alerts", "store", ""]);
        assert!(offered.iter().any(|o| o == "check"), "{offered:?}");
        let offered = bash_offers(&["mde-alerts", "auth", "check", "--"]);
        assert!(offered.iter().any(|o| o == "--show-token"), "{offered:?}");
        let offered = bash_offers(&["mde-alerts", "export", "--format", ""]);
        for want in ["csv", "xlsx", "report"] {
            assert!(
                offered.iter().any(|o| o == want),
                "{want} not in {offered:?}"
            );
        }
        let offered = bash_offers(&["mde-alerts", "completions", ""]);
        assert!(offered.iter().any(|o| o == "bash"), "{offered:?}");
    }

    #[test]
    fn every_page_the_man_pages_name_is_generated() {
        let dir = tempfile::tempdir().unwrap();
        manpages(Some(dir.path())).unwrap();
        let pages: std::collections::HashSet<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(pages.contains("mde-alerts.1"), "{pages:?}");
        let named = regex::Regex::new(r"(mde\\?-alerts(?:\\?-[a-z]+)+)\(1\)").unwrap();
        let mut checked = 0;
        for page in &pages {
            let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
            for c in named.captures_iter(&text) {
                let name = c[1].replace('\\', "");
                assert!(
                    pages.contains(&format!("{name}.1")),
                    "{page} names {name}(1), which is not generated"
                );
                checked += 1;
            }
        }
        assert!(
            checked >= 10,
            "the pages name their subcommands' pages ({checked})"
        );
        assert!(!pages.contains("mde-alerts-help.1"), "{pages:?}");
    }

    /// The package installs every page: the script writes them where the deb's assets take them.
    #[test]
    fn the_package_installs_every_man_page() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let build = std::fs::read_to_string(root.join("packaging/build-deb.sh")).unwrap();
        assert!(build.contains("manpage --dir target/assets/man"), "{build}");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(r#"["target/assets/man/*.1", "usr/share/man/man1/", "644"]"#),
            "the deb's assets take every page"
        );
    }
}

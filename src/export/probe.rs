//! Probing the export directories before a poll spends API calls: each one is created if need be
//! and must take a new file, written the way exports write them (a temp file with our prefix).

use crate::config::{Config, ConfigError};

/// Checks that every export directory exists (creating it) and can be written, so that a poll
/// does not fail on it after spending API calls. Called by the commands that write exports, not
/// by `status`, which a read-only user may run.
pub fn check_export_dirs(config: &Config) -> Result<(), ConfigError> {
    for (i, e) in config.exports.iter().enumerate() {
        let key = format!("exports[{i}].dir");
        let probe = std::fs::create_dir_all(&e.dir).and_then(|()| {
            tempfile::Builder::new()
                .prefix(&format!("{}{}-", super::TEMP_PREFIX, std::process::id()))
                .tempfile_in(&e.dir)
                .map(drop)
        });
        if let Err(err) = probe {
            return Err(ConfigError::new(
                key,
                format!("{} cannot be written: {err}", e.dir.display()),
                "create it and give the service's user write access (the systemd unit's export directory), or choose another dir",
            )
            .in_file(&config.path));
        }
    }
    Ok(())
}

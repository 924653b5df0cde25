//! The resolved settings as `config check` prints them. Secrets are never read here: only where
//! they come from is shown.

use std::fmt;

use super::{AuthMethod, Config, TokenEndpoint};

impl fmt::Display for Config {
    /// The resolved settings, as `config check` prints them. Secrets are never read here: only
    /// where they come from is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "config: {}", self.path.display())?;
        if let Some(dir) = &self.tenants_dir {
            let inline = self.tenants.iter().filter(|t| t.file == self.path).count();
            let mut files: Vec<_> = self
                .tenants
                .iter()
                .filter(|t| t.file != self.path)
                .map(|t| &t.file)
                .collect();
            files.dedup();
            writeln!(
                f,
                "tenants: {} in total: {inline} in the config, {} from {} file(s) in {}",
                self.tenants.len(),
                self.tenants.len() - inline,
                files.len(),
                dir.display()
            )?;
        }
        for t in &self.tenants {
            writeln!(f, "tenant {}:", t.name)?;
            if t.file != self.path {
                writeln!(f, "  file           {}", t.file.display())?;
            }
            writeln!(f, "  tenant_id      {}", t.tenant_id)?;
            writeln!(f, "  client_id      {}", t.client_id)?;
            match &t.auth {
                AuthMethod::ClientSecret(src) => writeln!(
                    f,
                    "  auth           client_secret, read from {src} (value redacted)"
                )?,
                AuthMethod::Certificate {
                    certificate_file,
                    private_key_file,
                    algorithm,
                } => {
                    writeln!(
                        f,
                        "  auth           certificate {} ({algorithm:?} assertion)",
                        certificate_file.display()
                    )?;
                    match private_key_file {
                        Some(k) => {
                            writeln!(f, "  private key    {} (contents redacted)", k.display())?
                        }
                        None => writeln!(
                            f,
                            "  private key    in the certificate file (contents redacted)"
                        )?,
                    }
                }
                AuthMethod::Password {
                    username,
                    password,
                    client_secret,
                } => {
                    writeln!(f, "  auth           password (delegated) as {username}")?;
                    writeln!(f, "  password       read from {password} (value redacted)")?;
                    match client_secret {
                        Some(src) => {
                            writeln!(f, "  client secret  read from {src} (value redacted)")?
                        }
                        None => writeln!(f, "  client secret  none (public client)")?,
                    }
                }
            }
            writeln!(f, "  cloud          {:?}", t.cloud)?;
            if let Some(r) = t.region {
                writeln!(f, "  region         {r:?}")?;
            }
            writeln!(f, "  login          {}", t.login_url)?;
            let graph = |f: &mut fmt::Formatter<'_>| -> fmt::Result {
                writeln!(f, "  graph          {}", t.graph_url)?;
                match &t.services {
                    super::Services::All => writeln!(f, "  services       all"),
                    super::Services::Only(l) => writeln!(f, "  services       {}", l.join(", ")),
                }
            };
            match t.source {
                super::SourceChoice::Auto => {
                    writeln!(
                        f,
                        "  source         auto (Microsoft Graph security/alerts_v2 when the app holds SecurityAlert.Read.All, else Defender for Endpoint /api/alerts; decided again at every token renewal)"
                    )?;
                    graph(f)?;
                    writeln!(f, "  api            {}", t.api_url)?;
                    writeln!(
                        f,
                        "  resource       {} (Graph), {} (Defender)",
                        t.graph_resource, t.resource
                    )?;
                }
                super::SourceChoice::Mde => {
                    writeln!(
                        f,
                        "  source         mde (Defender for Endpoint /api/alerts)"
                    )?;
                    writeln!(f, "  api            {}", t.api_url)?;
                    writeln!(f, "  resource       {}", t.resource)?;
                }
                super::SourceChoice::Graph => {
                    writeln!(
                        f,
                        "  source         graph (Microsoft Graph security/alerts_v2)"
                    )?;
                    graph(f)?;
                    writeln!(f, "  resource       {}", t.graph_resource)?;
                }
            }
            writeln!(
                f,
                "  token endpoint {}",
                match t.token_endpoint {
                    TokenEndpoint::V2 => "v2",
                    TokenEndpoint::V1 => "v1",
                }
            )?;
            // The budget of each API this tenant may read: Graph allows 150 calls a minute, MDE 100.
            let budget = |api| {
                let (minute, hour) = self.poll.quotas(api);
                format!("{minute} calls/minute, {hour} calls/hour")
            };
            match t.source.pinned() {
                Some(api) => writeln!(f, "  API budget     {}", budget(api))?,
                None => writeln!(
                    f,
                    "  API budget     {} on Graph, {} on the MDE API",
                    budget(super::SourceKind::Graph),
                    budget(super::SourceKind::Mde)
                )?,
            }
        }
        let p = &self.poll;
        writeln!(f, "poll:")?;
        writeln!(f, "  schedule         {} (UTC)", p.schedule.as_str())?;
        writeln!(
            f,
            "  initial_lookback {}",
            crate::words::duration(p.initial_lookback)
        )?;
        writeln!(
            f,
            "  overlap          {}",
            crate::words::duration(p.overlap)
        )?;
        writeln!(
            f,
            "  page_size        {} (Graph tenants: {})",
            p.page_size, p.graph_page_size
        )?;
        writeln!(f, "  expand_evidence  {}", p.expand_evidence)?;
        writeln!(
            f,
            "  request_timeout  {}",
            crate::words::duration(p.request_timeout)
        )?;
        let (mde, graph) = (
            p.quotas(super::SourceKind::Mde),
            p.quotas(super::SourceKind::Graph),
        );
        writeln!(
            f,
            "  API budget       per tenant: {} calls/minute, {} calls/hour reading the MDE API; {} calls/minute, {} calls/hour reading Graph",
            mde.0, mde.1, graph.0, graph.1
        )?;
        writeln!(f, "store: {}", self.store.path.display())?;
        match &self.http.proxy {
            Some(p) => writeln!(f, "proxy: {p}")?,
            None => writeln!(f, "proxy: from HTTPS_PROXY / NO_PROXY, if set")?,
        }
        if let Some(ca) = &self.http.ca_file {
            writeln!(f, "extra CA: {}", ca.display())?;
        }
        for e in &self.exports {
            writeln!(
                f,
                "export {}: {} into {}, scope {}, {}{}{}",
                e.name,
                // As the config writes it (`csv`), not as the code names it.
                clap::ValueEnum::to_possible_value(&e.format)
                    .map_or_else(String::new, |v| v.get_name().to_owned()),
                e.dir.display(),
                e.scope,
                match &e.schedule {
                    Some(c) => format!("on schedule {} (UTC)", c.as_str()),
                    None => "after every successful poll".into(),
                },
                match e.time_format {
                    super::TimeFormat::Excel => ", spreadsheet times (UTC)",
                    super::TimeFormat::Iso => "",
                },
                e.timezone
                    .map(|tz| format!(", dates in {}", tz.name()))
                    .unwrap_or_default()
            )?;
            if !e.mail_to.is_empty() {
                let to: Vec<String> = e.mail_to.iter().map(|m| m.email.to_string()).collect();
                writeln!(f, "  mailed to {}", to.join(", "))?;
            }
        }
        if let Some(m) = &self.mail {
            writeln!(f, "mail: {m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn each_tenant_shows_the_budget_of_the_api_it_reads() {
        let tenant = |name: &str, source: &str| {
            format!(
                r#"
[[tenants]]
name = "{name}"
tenant_id = "{name}.onmicrosoft.com"
client_id = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
client_secret_env = "TEST_SECRET_VAR"
source = "{source}"
"#
            )
        };
        let text = format!(
            "{}{}{}\n[store]\npath = \"alerts.db\"\n",
            tenant("viagraph", "graph"),
            tenant("viamde", "mde"),
            tenant("viaauto", "auto")
        );
        let shown = Config::parse(&text, Path::new("/etc/x/config.toml"))
            .unwrap()
            .to_string();
        let budget = |name: &str| {
            let block = shown
                .split("tenant ")
                .find(|b| b.starts_with(&format!("{name}:")))
                .unwrap_or_else(|| panic!("no block for {name} in {shown}"));
            block
                .lines()
                .find(|l| l.trim_start().starts_with("API budget"))
                .unwrap_or_else(|| panic!("no budget for {name} in {block}"))
                .trim()
                .to_owned()
        };
        assert_eq!(
            budget("viagraph"),
            "API budget     150 calls/minute, 9000 calls/hour"
        );
        assert_eq!(
            budget("viamde"),
            "API budget     100 calls/minute, 1500 calls/hour"
        );
        assert_eq!(
            budget("viaauto"),
            "API budget     150 calls/minute, 9000 calls/hour on Graph, 100 calls/minute, 1500 calls/hour on the MDE API"
        );
        assert!(
            shown.contains("100 calls/minute, 1500 calls/hour reading the MDE API; 150 calls/minute, 9000 calls/hour reading Graph"),
            "{shown}"
        );
    }
}

//! Config providers, as Kafka's `config.providers`: a config value may hold `${PROVIDER:[PATH:]KEY}`
//! references that the worker replaces when it reads its own config and each time it starts a
//! connector, so that secrets live in the environment or in files rather than in connector configs.
//! What operators read back over REST and what the worker stores keep the references.
//!
//! The worker file declares them as Kafka's does:
//!
//! ```properties
//! config.providers=env,file,directory
//! config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
//! config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
//! config.providers.directory.class=org.apache.kafka.common.config.provider.DirectoryConfigProvider
//! ```
//!
//! `${env:NAME}` is an environment variable (`config.providers.env.param.allowlist.pattern` limits
//! which); `${file:PATH:KEY}` the key of a properties file; `${directory:PATH:FILE}` the contents of a
//! file in a directory (`config.providers.<name>.param.allowed.paths` limits where both read). A
//! reference to a provider that is not declared stays as it is, as in Kafka; a reference a declared
//! provider cannot resolve (the variable unset, the file or key missing) is an error naming the key and
//! the reference, where Kafka would pass the reference on unresolved.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use regex::Regex;

use super::{load_properties_file, ConfigError, ConfigIssue, ConfigMap};

pub const CONFIG_PROVIDERS: &str = "config.providers";

const ENV_CLASS: &str = "org.apache.kafka.common.config.provider.EnvVarConfigProvider";
const FILE_CLASS: &str = "org.apache.kafka.common.config.provider.FileConfigProvider";
const DIRECTORY_CLASS: &str = "org.apache.kafka.common.config.provider.DirectoryConfigProvider";

/// What a provider reads.
#[derive(Debug, Clone)]
enum Source {
    Env { allowlist: Option<Regex> },
    File,
    Directory,
}

#[derive(Debug, Clone)]
struct Provider {
    source: Source,
    /// Where `file` and `directory` may read (`None`: anywhere).
    allowed_paths: Option<Vec<PathBuf>>,
}

/// The providers a worker declares.
#[derive(Debug, Clone, Default)]
pub struct ConfigProviders {
    providers: BTreeMap<String, Provider>,
}

impl ConfigProviders {
    /// The providers `config.providers` declares in the worker's keys.
    pub fn from_worker(worker: &ConfigMap) -> Result<ConfigProviders, ConfigError> {
        let mut providers = BTreeMap::new();
        let names = worker.get(CONFIG_PROVIDERS).map_or("", String::as_str);
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let key = |suffix: &str| format!("{CONFIG_PROVIDERS}.{name}.{suffix}");
            let class_key = key("class");
            let class = worker.get(&class_key).ok_or_else(|| {
                ConfigError::single(
                    &class_key,
                    format!(
                        "missing: {CONFIG_PROVIDERS} names {name:?}, so its class must be given"
                    ),
                )
            })?;
            let param = |param: &str| worker.get(&key(&format!("param.{param}")));
            let source = match class.trim() {
                ENV_CLASS | "EnvVarConfigProvider" => {
                    let allowlist = match param("allowlist.pattern") {
                        Some(pattern) => Some(Regex::new(&format!("^(?:{pattern})$")).map_err(
                            |e| ConfigError::single(key("param.allowlist.pattern"), e.to_string()),
                        )?),
                        None => None,
                    };
                    Source::Env { allowlist }
                }
                FILE_CLASS | "FileConfigProvider" => Source::File,
                DIRECTORY_CLASS | "DirectoryConfigProvider" => Source::Directory,
                other => {
                    return Err(ConfigError::single(
                        class_key,
                        format!("{other:?} is not a config provider Sluice has: {ENV_CLASS}, {FILE_CLASS} or {DIRECTORY_CLASS}"),
                    ))
                }
            };
            let allowed_paths = param("allowed.paths").map(|paths| {
                paths
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| normalized(Path::new(p)))
                    .collect()
            });
            providers.insert(
                name.to_owned(),
                Provider {
                    source,
                    allowed_paths,
                },
            );
        }
        Ok(ConfigProviders { providers })
    }

    /// `config` with every reference to a declared provider replaced by what it names; every failure
    /// listed, each under its key (the message names the reference, never a resolved value).
    pub fn resolve(&self, config: &ConfigMap) -> Result<ConfigMap, ConfigError> {
        if self.providers.is_empty() {
            return Ok(config.clone());
        }
        let mut issues = Vec::new();
        let mut resolved = ConfigMap::new();
        for (key, value) in config {
            // The providers' own keys are taken as written.
            if key.starts_with(CONFIG_PROVIDERS) {
                resolved.insert(key.clone(), value.clone());
                continue;
            }
            match self.resolve_value(value) {
                Ok(value) => {
                    resolved.insert(key.clone(), value);
                }
                Err(message) => issues.push(ConfigIssue {
                    key: key.clone(),
                    message,
                }),
            }
        }
        match issues.is_empty() {
            true => Ok(resolved),
            false => Err(ConfigError { issues }),
        }
    }

    fn resolve_value(&self, value: &str) -> Result<String, String> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let reference = &rest[start..start + len + 1];
            out.push_str(&rest[..start]);
            match self.lookup(&reference[2..reference.len() - 1]) {
                Some(found) => out.push_str(&found.map_err(|why| format!("{reference}: {why}"))?),
                None => out.push_str(reference),
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// What `provider:[path:]key` names: `None` when it does not name a declared provider.
    fn lookup(&self, inner: &str) -> Option<Result<String, String>> {
        let (name, rest) = inner.split_once(':')?;
        let provider = self.providers.get(name)?;
        // Kafka's pattern takes the shortest path: `${file:/a/b.properties:x:y}` reads key `x:y`.
        let (path, key) = match rest.split_once(':') {
            Some((path, key)) => (Some(path), key),
            None => (None, rest),
        };
        Some(provider.read(path, key))
    }
}

impl Provider {
    fn read(&self, path: Option<&str>, key: &str) -> Result<String, String> {
        match &self.source {
            Source::Env { allowlist } => {
                if path.is_some_and(|p| !p.is_empty()) {
                    return Err("environment variables have no path: write ${env:NAME}".into());
                }
                if allowlist.as_ref().is_some_and(|allow| !allow.is_match(key)) {
                    return Err(format!("{key} is not in the provider's allowlist.pattern"));
                }
                std::env::var(key).map_err(|_| format!("the environment variable {key} is not set"))
            }
            Source::File => {
                let file = self.allowed(path)?;
                let props = load_properties_file(&file).map_err(|e| e.to_string())?;
                props
                    .get(key)
                    .cloned()
                    .ok_or_else(|| format!("{} has no key {key}", file.display()))
            }
            Source::Directory => {
                let dir = self.allowed(path)?;
                if key.contains('/') || key == ".." {
                    return Err(format!("{key} is not a file name in {}", dir.display()));
                }
                let file = dir.join(key);
                std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))
            }
        }
    }

    /// The path of a `file` or `directory` reference, if the provider may read there.
    fn allowed(&self, path: Option<&str>) -> Result<PathBuf, String> {
        let path = path
            .filter(|p| !p.is_empty())
            .ok_or("no path: write ${PROVIDER:PATH:KEY}")?;
        let normal = normalized(Path::new(path));
        if let Some(allowed) = &self.allowed_paths {
            if !allowed.iter().any(|a| normal.starts_with(a)) {
                return Err(format!("{path} is outside the provider's allowed.paths"));
            }
        }
        Ok(normal)
    }
}

/// `path` without `.` and with each `..` taking away the component before it (lexically, as Kafka's
/// `Path.normalize`), so that `allowed.paths` cannot be escaped with `..`.
fn normalized(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn providers(extra: &[(&str, &str)]) -> ConfigProviders {
        let mut worker = map(&[
            (CONFIG_PROVIDERS, "env,file,directory"),
            ("config.providers.env.class", ENV_CLASS),
            ("config.providers.file.class", FILE_CLASS),
            ("config.providers.directory.class", DIRECTORY_CLASS),
        ]);
        worker.extend(map(extra));
        ConfigProviders::from_worker(&worker).unwrap()
    }

    #[test]
    fn references_resolve_from_files_directories_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets.properties");
        std::fs::write(&secrets, "db.password=s3cret\nuser: admin\n").unwrap();
        std::fs::write(dir.path().join("token"), "tok-123").unwrap();
        let config = map(&[
            (
                "connection.password",
                &format!("${{file:{}:db.password}}", secrets.display()),
            ),
            (
                "connection.url",
                &format!(
                    "jdbc:postgresql://db/${{file:{}:user}}?x=1",
                    secrets.display()
                ),
            ),
            (
                "token",
                &format!("${{directory:{}:token}}", dir.path().display()),
            ),
            ("home", "${env:HOME}"),
            ("untouched", "${vault:secret/path:key}"),
            ("plain", "no references"),
        ]);
        let resolved = providers(&[]).resolve(&config).unwrap();
        assert_eq!(resolved["connection.password"], "s3cret");
        assert_eq!(resolved["connection.url"], "jdbc:postgresql://db/admin?x=1");
        assert_eq!(resolved["token"], "tok-123");
        assert_eq!(resolved["home"], std::env::var("HOME").unwrap());
        assert_eq!(resolved["untouched"], "${vault:secret/path:key}");
        assert_eq!(resolved["plain"], "no references");
    }

    #[test]
    fn what_cannot_be_resolved_is_named_by_key_and_reference() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets.properties");
        std::fs::write(&secrets, "a=1\n").unwrap();
        let config = map(&[
            ("a", "${env:SLUICE_SURELY_UNSET_VARIABLE}"),
            ("b", &format!("${{file:{}:missing}}", secrets.display())),
            ("c", "${file:/nonexistent/secrets.properties:a}"),
            (
                "d",
                &format!("${{file:{}/../../etc/passwd:root}}", dir.path().display()),
            ),
            ("e", "${env:HOME}"),
        ]);
        let allowed = dir.path().display().to_string();
        let err = providers(&[
            ("config.providers.file.param.allowed.paths", &allowed),
            ("config.providers.env.param.allowlist.pattern", "SLUICE_.*"),
        ])
        .resolve(&config)
        .unwrap_err();
        let messages: Vec<String> = err.issues.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 5, "{messages:?}");
        assert!(messages[0].starts_with("a: ${env:SLUICE_SURELY_UNSET_VARIABLE}: the environment variable SLUICE_SURELY_UNSET_VARIABLE is not set"), "{messages:?}");
        assert!(messages[1].contains("has no key missing"), "{messages:?}");
        assert!(
            messages[2].contains("outside the provider's allowed.paths"),
            "{messages:?}"
        );
        assert!(
            messages[3].contains("outside the provider's allowed.paths"),
            "{messages:?}"
        );
        assert!(
            messages[4].contains("HOME is not in the provider's allowlist.pattern"),
            "{messages:?}"
        );
    }

    #[test]
    fn a_provider_must_have_a_class_sluice_has() {
        let err = ConfigProviders::from_worker(&map(&[(CONFIG_PROVIDERS, "vault")])).unwrap_err();
        assert_eq!(err.issues[0].key, "config.providers.vault.class");
        let err = ConfigProviders::from_worker(&map(&[
            (CONFIG_PROVIDERS, "vault"),
            (
                "config.providers.vault.class",
                "com.example.VaultConfigProvider",
            ),
        ]))
        .unwrap_err();
        assert!(err.issues[0]
            .message
            .contains("is not a config provider Sluice has"));
        let none = ConfigProviders::from_worker(&ConfigMap::new()).unwrap();
        let config = map(&[("a", "${env:HOME}")]);
        assert_eq!(
            none.resolve(&config).unwrap(),
            config,
            "no provider declared: nothing resolved"
        );
    }
}

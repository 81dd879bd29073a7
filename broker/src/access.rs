//! The broker's own [`Auth`]: the password file, the ACL file and the topic policy of the
//! configuration, reloadable while clients stay connected ([`Access::reload`], on SIGHUP).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use midge_codec::{Connect, ReasonCode, TopicFilter, TopicName};

use crate::acl::{Acl, Action};
use crate::auth::{Auth, ClientInfo};
use crate::config::{Config, ConfigError};
use crate::passwd::{PasswordFile, Verdict};
use crate::topic_policy::TopicPolicy;

/// Authentication and access control from files.
///
/// With a password file, a client must give a user name and the password the file holds
/// for it (CONNACK 0x86, or 4 for 3.x, otherwise); one without a user name gets in only if
/// `allow_anonymous` is set (0x87 / 5 otherwise). Without one, user names are taken as given.
/// With an ACL file, every publish, subscription and delivery is checked against it.
#[derive(Debug)]
pub struct Access {
    password_file: Option<PathBuf>,
    acl_file: Option<PathBuf>,
    passwords: RwLock<Option<Arc<PasswordFile>>>,
    acl: RwLock<Option<Arc<Acl>>>,
    allow_anonymous: bool,
    policy: TopicPolicy,
    admins: HashSet<String>,
}

fn load<T>(
    path: Option<&Path>,
    parse: fn(&Path) -> Result<T, String>,
) -> Result<Option<Arc<T>>, String> {
    path.map(|p| parse(p).map(Arc::new)).transpose()
}

fn get<T>(lock: &RwLock<Option<Arc<T>>>) -> Option<Arc<T>> {
    lock.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn set<T>(lock: &RwLock<Option<Arc<T>>>, value: Option<Arc<T>>) {
    *lock.write().unwrap_or_else(|p| p.into_inner()) = value;
}

impl Access {
    /// Reads the files the configuration names; an error names the file and line.
    pub fn from_config(config: &Config) -> Result<Access, ConfigError> {
        let passwords =
            load(config.password_file.as_deref(), PasswordFile::load).map_err(ConfigError)?;
        let acl = load(config.acl_file.as_deref(), Acl::load).map_err(ConfigError)?;
        if let Some(p) = &passwords {
            tracing::info!(users = p.len(), "password file loaded");
        }
        let verified = config.password_file.is_some() || config.tls_client_ca.is_some();
        let by_name = config.acl_file.is_some() || !config.admin_users.is_empty();
        if by_name && !verified {
            tracing::warn!(
                "the ACL and admin_users go by user name, but without a password_file (or \
                 tls_client_ca) user names are not checked: any client can claim any"
            );
        }
        Ok(Access {
            password_file: config.password_file.clone(),
            acl_file: config.acl_file.clone(),
            passwords: RwLock::new(passwords),
            acl: RwLock::new(acl),
            allow_anonymous: config.allow_anonymous,
            policy: config.topic_policy,
            admins: config.admin_users.iter().cloned().collect(),
        })
    }

    /// Reads the password and ACL files again. A file that cannot be used is reported and
    /// the rules read before stay in force; connected clients keep their connections and
    /// are judged by the new rules from their next packet on.
    pub fn reload(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        match load(self.password_file.as_deref(), PasswordFile::load) {
            Ok(p) => set(&self.passwords, p),
            Err(e) => errors.push(e),
        }
        match load(self.acl_file.as_deref(), Acl::load) {
            Ok(a) => set(&self.acl, a),
            Err(e) => errors.push(e),
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn is_admin(&self, client: ClientInfo<'_>) -> bool {
        client.username.is_some_and(|u| self.admins.contains(u))
    }

    fn acl_allows(&self, client: ClientInfo<'_>, action: Action, topic: &str) -> bool {
        // Every delivery asks: without an ACL file, answer without touching the lock.
        if self.acl_file.is_none() {
            return true;
        }
        get(&self.acl)
            .is_none_or(|acl| acl.allows(client.username, client.client_id, action, topic))
    }
}

impl Auth for Access {
    fn connect(&self, connect: &Connect) -> Result<(), ReasonCode> {
        let Some(passwords) = get(&self.passwords) else {
            return Ok(());
        };
        let Some(user) = connect.username.as_deref() else {
            return if self.allow_anonymous {
                Ok(())
            } else {
                Err(ReasonCode::NotAuthorized)
            };
        };
        let password = connect.password.as_deref().unwrap_or_default();
        match passwords.verify(user, password) {
            Verdict::Valid => Ok(()),
            Verdict::Invalid => Err(ReasonCode::BadUserNameOrPassword),
        }
    }

    fn subscribe(&self, client: ClientInfo<'_>, filter: &TopicFilter) -> bool {
        let inner = filter.filter();
        if let Err(why) = self.policy.subscribe(inner, self.is_admin(client)) {
            tracing::debug!(
                client = client.client_id,
                filter = inner,
                "topic policy: {why}"
            );
            return false;
        }
        self.acl_allows(client, Action::Subscribe, inner)
    }

    fn publish(&self, client: ClientInfo<'_>, topic: &TopicName) -> bool {
        let topic = topic.as_str();
        if let Err(why) = self
            .policy
            .publish(topic, client.client_id, self.is_admin(client))
        {
            tracing::debug!(client = client.client_id, topic, "topic policy: {why}");
            return false;
        }
        self.acl_allows(client, Action::Publish, topic)
    }

    fn receive(&self, client: ClientInfo<'_>, topic: &TopicName) -> bool {
        self.acl_allows(client, Action::Receive, topic.as_str())
    }
}

//! What a policy file needs beyond being valid TOML of the right shape,
//! checked alike by `check`, `run`, each worker and every reload: session
//! keys that read, a lock file that matches its hashes, and what stdio
//! pools ask of this machine.

use crate::ops::worker_identity;
use crate::upstream;

/// Session keys, newest first: `[sessions] keys`, then `key_file`, else
/// the key the supervisor generated for this run (`MCPGATE_SESSION_KEYS`).
pub(crate) fn session_keys(policy: &policies::Policy) -> Result<Vec<[u8; 32]>, String> {
    let mut keys = policy.sessions.keys.clone();
    if let Some(path) = &policy.sessions.key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("sessions.key_file {}: {e}", path.display()))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            keys.push(policies::decode_session_key(line).ok_or_else(|| {
                format!("{}:{}: not the base64 of 32 bytes", path.display(), n + 1)
            })?);
        }
    }
    if keys.is_empty() {
        if let Ok(v) = std::env::var(worker_identity::ENV_SESSION_KEYS) {
            keys.extend(v.split(',').filter_map(policies::decode_session_key));
        }
    }
    Ok(keys)
}

/// What a valid policy still needs from this machine: a lock file that
/// reads and matches its hashes, and what stdio pools ask for (bubblewrap).
pub(crate) fn runnable(policy: &policies::Policy) -> Result<(), String> {
    upstream::pins::books(policy)?;
    for pool in &policy.upstreams {
        for ep in &pool.endpoints {
            if let policies::Transport::Stdio(spec) = &ep.transport {
                if let Some(why) = upstream::stdio::launch::unavailable(spec) {
                    return Err(format!("upstreams.{}: {why}", pool.name));
                }
            }
        }
    }
    Ok(())
}

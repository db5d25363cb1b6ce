//! Parents before children: a sync runs after every sync it associates to, so a child's
//! association target already has a CRM id when the child is planned.

use crmsync_core::config::SyncConfig;

/// Indices of `syncs` in dependency order (config order among independent syncs).
/// The config validation rejects cycles; a cycle here falls back to config order.
pub fn dependency_order(syncs: &[SyncConfig]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(syncs.len());
    let mut progressed = true;
    while out.len() < syncs.len() && progressed {
        progressed = false;
        for (i, s) in syncs.iter().enumerate() {
            if out.contains(&i) {
                continue;
            }
            let ready = s.associate.values().all(|target| {
                target == &s.name
                    || syncs
                        .iter()
                        .position(|t| &t.name == target)
                        .is_none_or(|j| out.contains(&j))
            });
            if ready {
                out.push(i);
                progressed = true;
            }
        }
    }
    for i in 0..syncs.len() {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

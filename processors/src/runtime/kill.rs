//! Kill points, for crash tests: named places in the batch loop where the process aborts at
//! once, with no clean-up (as a SIGKILL would stop it, but at a chosen instant).
//!
//! They exist only in builds with the `failpoints` feature (`cargo test --workspace` turns it
//! on for the end-to-end tests' `fleuve` binary; release builds never have it). They are
//! armed with `FLEUVE_KILL_POINTS`, in the syntax of the `fail` crate: `;`-separated
//! `name=actions`, where `return` fires and `N*off->return` fires on the (N+1)-th pass. For
//! example `FLEUVE_KILL_POINTS='processor::after_apply=5*off->return'` aborts the process
//! the sixth time any of its processors has written a batch to the store, before the Kafka
//! offsets are stored. Setting it on a build without the feature is refused, so that a
//! crash test cannot pass without crashing.

/// After the handler folded a batch and its dead letters were sent, before the store write.
pub const BEFORE_APPLY: &str = "processor::before_apply";
/// After the store write (records and checkpoints), before the Kafka offsets are stored.
pub const AFTER_APPLY: &str = "processor::after_apply";
/// In a consumer group, when partitions are assigned, before any of them is positioned.
pub const ON_ASSIGN: &str = "processor::on_assign";
/// Every kill point.
pub const ALL: [&str; 3] = [BEFORE_APPLY, AFTER_APPLY, ON_ASSIGN];

/// The variable that arms kill points.
pub const ENV: &str = "FLEUVE_KILL_POINTS";

/// Arms the kill points named in [`ENV`], once per process; the error says what is wrong
/// with it.
pub(crate) fn arm() -> Result<(), String> {
    static ARMED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    ARMED
        .get_or_init(|| match std::env::var(ENV) {
            Ok(spec) if !spec.trim().is_empty() => configure(&spec),
            _ => Ok(()),
        })
        .clone()
}

#[cfg(feature = "failpoints")]
fn configure(spec: &str) -> Result<(), String> {
    for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, actions) = item
            .split_once('=')
            .ok_or_else(|| format!("{ENV}: `{item}` is not `name=actions`"))?;
        let name = name.trim();
        if !ALL.contains(&name) {
            return Err(format!(
                "{ENV}: unknown kill point `{name}`; the kill points are {}",
                ALL.join(", ")
            ));
        }
        fail::cfg(name, actions.trim()).map_err(|e| format!("{ENV}: `{item}`: {e}"))?;
        tracing::warn!(
            kill_point = name,
            actions = actions.trim(),
            "kill point armed"
        );
    }
    Ok(())
}

#[cfg(not(feature = "failpoints"))]
fn configure(_spec: &str) -> Result<(), String> {
    Err(format!(
        "{ENV} is set but this build has no kill points: build it with `--features failpoints` \
         (`cargo test --workspace` does)"
    ))
}

/// Aborts the process if the kill point `name` is armed and fires now.
#[cfg(feature = "failpoints")]
pub(crate) fn pass(name: &'static str) {
    if fail::eval(name, |_| ()).is_some() {
        tracing::error!(kill_point = name, "kill point reached: aborting");
        std::process::abort();
    }
}

/// Kill points are compiled out of this build.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn pass(_name: &'static str) {}

#[cfg(test)]
mod tests {
    use super::configure;

    #[cfg(feature = "failpoints")]
    #[test]
    fn a_bad_setting_names_what_is_wrong() {
        let e = configure("processor::after_apply").unwrap_err();
        assert!(e.contains("is not `name=actions`"), "{e}");
        let e = configure("processor::nowhere=return").unwrap_err();
        assert!(e.contains("unknown kill point `processor::nowhere`"), "{e}");
        assert!(e.contains(super::AFTER_APPLY), "{e}");
        let e = configure("processor::on_assign=sometimes").unwrap_err();
        assert!(e.contains("processor::on_assign=sometimes"), "{e}");
        configure("processor::on_assign=off").unwrap();
    }

    #[cfg(not(feature = "failpoints"))]
    #[test]
    fn a_build_without_kill_points_refuses_to_arm_them() {
        let e = configure("processor::after_apply=return").unwrap_err();
        assert!(e.contains("--features failpoints"), "{e}");
    }
}

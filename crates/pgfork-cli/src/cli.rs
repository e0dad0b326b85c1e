//! The command-line grammar (DESIGN.md §6).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "pgfork",
    version,
    about = "A copy-on-write PostgreSQL branch for every git branch",
    propagate_version = true
)]
pub struct Cli {
    /// Project to act on (default: from .pgfork.toml, or the only project).
    #[arg(long, global = true, env = "PGFORK_PROJECT")]
    pub project: Option<String>,
    /// More detail on stderr: -v what pgfork does, -vv everything (same as PGFORK_LOG).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less on stderr: no progress bars or notes (warnings and errors still show).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ImportMethod {
    /// pg_dump/pg_restore with roles, owners, grants and settings (any major, managed
    /// services included).
    Logical,
    /// A physical copy (pg_basebackup), once.
    Physical,
    /// A streaming standby of the source that stays seconds behind it (same major);
    /// branches are cloned from it as it runs.
    Replica,
    /// The source's schema, then a subscription that copies its data and follows it
    /// (managed services, any major; the source needs wal_level = logical).
    Subscribe,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Mask the root by these rules (TOML, or Neon's JSON) before it is committed, so
    /// that no branch of the project ever holds the originals; without a file, the one
    /// `[masking] rules` in .pgfork.toml names.
    #[arg(long, value_name = "RULES", num_args = 0..=1, default_missing_value = "")]
    pub mask: Option<String>,
    /// Import the root branch from this database URL; `-` reads it from standard input
    /// (a password in the command line is visible to every user in `ps`).
    #[arg(long, value_name = "URL", conflicts_with_all = ["from_dir", "empty", "sample", "from_env"])]
    pub from: Option<String>,
    /// Import the root branch from the database URL in this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with_all = ["from_dir", "empty", "sample"])]
    pub from_env: Option<String>,
    /// How to import --from: pg_dump/pg_restore (any version), pg_basebackup (same
    /// major), a standby that follows the source (replica), or a subscription that
    /// follows it (subscribe).
    #[arg(long, value_enum, default_value = "logical")]
    pub method: ImportMethod,
    /// With --method subscribe: an existing publication on the source (default: pgfork
    /// creates one of every table).
    #[arg(long, value_name = "NAME")]
    pub publication: Option<String>,
    /// Adopt a stopped data directory by cloning it (the original is never modified).
    #[arg(long, value_name = "PGDATA", conflicts_with_all = ["empty", "sample"])]
    pub from_dir: Option<PathBuf>,
    /// Start from an empty cluster (the default when no source is given).
    #[arg(long, conflicts_with = "sample")]
    pub empty: bool,
    /// Fill the root branch with generated pgbench-shaped data.
    #[arg(long)]
    pub sample: bool,
    /// Sample size, like pgbench's scale factor (1 ≈ 15 MB, 100 ≈ 1.5 GB).
    #[arg(long, default_value_t = 1, requires = "sample", value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub scale: u32,
    /// Don't install git hooks.
    #[arg(long)]
    pub no_hooks: bool,
    /// Name of the root branch.
    #[arg(long, default_value = "main")]
    pub root: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the project and its root branch; writes .pgfork.toml.
    #[command(
        after_help = "Examples:\n  pgfork init --sample              # generated data, hooks, .env\n  pgfork init --from-env PROD_URL   # import a database (pg_dump/pg_restore)\n  pgfork init --from-dir /var/lib/postgresql/15/main --method physical"
    )]
    Init(InitArgs),
    /// Create, list and manage branches.
    #[command(
        after_help = "Examples:\n  pgfork branch create ci-42 --ttl 2h   # a running, isolated copy of the root\n  pgfork branch list\n  pgfork branch reset ci-42             # back to its parent's current state\n  pgfork branch delete ci-42            # to the trash; `branch recover ci-42` undoes it"
    )]
    Branch {
        #[command(subcommand)]
        command: BranchCommand,
    },
    /// Print a branch's connection URL (default: the branch of the current git HEAD, else the root).
    #[command(
        after_help = "Examples:\n  psql \"$(pgfork url)\"            # HEAD's database\n  pgfork url feature-x --secure    # verify-full TLS and channel binding\n  pgfork url main --role app       # another role's URL"
    )]
    Url {
        branch: Option<String>,
        /// The work tree's follow-HEAD URL: every new connection reaches the database
        /// of whatever branch is checked out.
        #[arg(long, conflicts_with = "branch")]
        follow: bool,
        /// A URL no impostor can answer: verify the server against the store's CA and
        /// bind the password exchange to its certificate (SCRAM channel binding).
        #[arg(long)]
        secure: bool,
        /// The URL for another role of the branch (an application role imported with
        /// the data): it has no password in it, as that role logs in with its own.
        #[arg(long, value_name = "NAME", conflicts_with = "follow")]
        role: Option<String>,
        /// The branch's private unix socket instead of its port: the highest local
        /// throughput (no proxy), for the daemon's own user on its machine only. Starts
        /// the branch; a suspended branch is not woken by it later, and idle tracking
        /// does not see its clients.
        #[arg(long, conflicts_with_all = ["follow", "secure"])]
        direct: bool,
    },
    /// Open psql on a branch.
    Psql {
        branch: Option<String>,
        /// Connect as the superuser through the branch's private socket (this machine's
        /// daemon only: the superuser has no password, so no URL reaches it).
        #[arg(long)]
        superuser: bool,
        /// Extra arguments for psql (after --).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Schema changes of a branch (default: HEAD's) against its parent, as a unified
    /// diff of DDL; --json lists the changed tables, columns, indexes, constraints,
    /// functions, views, types, policies and grants.
    Diff {
        branch: Option<String>,
        /// Compare against this branch instead of the parent.
        #[arg(long, value_name = "BRANCH")]
        against: Option<String>,
        /// The database to compare (default: the project's).
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Repository, HEAD, its branch, the daemon and the store.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Check what works and print the exact fix for what does not.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Install, remove or inspect the git hooks that pair branches with databases.
    Hooks {
        #[command(subcommand)]
        command: HooksCommand,
    },
    /// Run by the git hooks (not for direct use).
    #[command(hide = true)]
    Hook {
        name: String,
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Remove branches whose git branch is gone or merged, expired TTLs, old trash.
    Gc {
        /// Only say what would be done.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Allows this repository's .pgfork.toml commands (after_create) to run on this
    /// machine; asked again whenever the command changes.
    Allow,
    /// Deleted branches, recoverable until their grace period ends.
    Trash {
        #[command(subcommand)]
        command: TrashCommand,
    },
    /// Run or control the daemon.
    Daemon {
        #[command(subcommand)]
        command: DaemonCommand,
    },
    /// API keys for the network API (`--api`, `PGFORK_API_LISTEN`): shown once, kept
    /// hashed. Managed on the server's machine only.
    #[command(
        after_help = "Examples:\n  pgfork token create ci --project web --expires-in 90d\n  pgfork token create dashboard --read-only\n  pgfork token list\n  pgfork token revoke ci"
    )]
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Pull-request branches by webhook (team server): GitHub, GitLab and Gitea tell
    /// pgfork when a pull request opens (branch `pr-N` from its base) and closes (to the
    /// trash).
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// An MCP server (stdio) that gives coding agents their own branches; `pgfork mcp
    /// install --client claude|cursor|vscode` writes the client's configuration.
    #[command(
        after_help = "Examples:\n  pgfork mcp install --client claude   # writes .mcp.json for this repository\n  pgfork mcp --read-only               # what the client starts (stdio)"
    )]
    Mcp(McpArgs),
    /// Servers this CLI (and the git hooks) can drive instead of the local daemon: a
    /// pgfork team server, or anything speaking Neon's API v2.
    #[command(
        after_help = "Examples:\n  pgfork remote add team https://db.example.com:4480/api/v2 --key-stdin --ca ca.crt --use < key.txt\n  pgfork remote use local"
    )]
    Remote {
        #[command(subcommand)]
        command: RemoteCommand,
    },
    /// Snapshots: a branch's data at a moment, to make branches from or restore to.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// The project's root: make it again from its source, now or on a schedule.
    Root {
        #[command(subcommand)]
        command: RootCommand,
    },
    /// Projects: list, show, delete (with every branch).
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Masking of personal data: which columns look personal and no rule covers.
    Mask {
        #[command(subcommand)]
        command: MaskCommand,
    },
    /// Print a shell completion script: `pgfork completions bash > ~/.local/share/bash-completion/completions/pgfork`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// A self-contained walkthrough in a temporary repository.
    Demo {
        /// Sample scale for the demo's root branch.
        #[arg(long, default_value_t = 5)]
        scale: u32,
        /// Keep the temporary repository and store afterwards.
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BranchCommand {
    /// Create a branch: a copy-on-write clone of its parent, running.
    Create {
        name: String,
        /// Parent branch (default: the root).
        #[arg(long)]
        parent: Option<String>,
        /// Delete automatically after this long (e.g. 24h, 7d).
        #[arg(long, conflicts_with = "expires_at")]
        ttl: Option<String>,
        /// Delete automatically at this time (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
        /// Refuse deletion until unprotected.
        #[arg(long)]
        protected: bool,
        /// Suspend after this long without clients (e.g. 10m; -1 never; default: the daemon's).
        #[arg(long, allow_hyphen_values = true)]
        idle_timeout: Option<String>,
        /// Return once the server accepted the request, without waiting for the branch
        /// to accept connections (prints the operation to poll).
        #[arg(long)]
        no_wait: bool,
        /// Mask personal data by these rules (TOML, or Neon's JSON) before anyone may
        /// connect; without a file, the one `[masking] rules` in .pgfork.toml names.
        #[arg(long, value_name = "RULES", num_args = 0..=1, default_missing_value = "")]
        mask: Option<String>,
        /// In a project marked `[masking] pii = true`, make an unmasked copy of unmasked
        /// data anyway (recorded in the daemon's log).
        #[arg(long, conflicts_with = "mask")]
        unmasked: bool,
        /// Make it at a past moment of its parent's history: an RFC 3339 time, "10m ago",
        /// or a WAL position (the parent needs `[history] window` in .pgfork.toml).
        #[arg(long, value_name = "TIME|LSN", conflicts_with = "mask")]
        at: Option<String>,
        /// Make it from a snapshot (name or id) instead of its parent's current state.
        #[arg(long, value_name = "SNAPSHOT", conflicts_with_all = ["parent", "mask", "unmasked", "ttl", "expires_at", "protected", "idle_timeout", "no_wait", "at"])]
        from_snapshot: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List branches with state, port, sizes and clone method.
    List {
        /// Include deleted branches in the trash.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one branch.
    Get {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Soft-delete (recoverable during the grace period), or --purge for good.
    Delete {
        name: String,
        #[arg(long)]
        purge: bool,
    },
    /// Bring a deleted branch back from the trash.
    Recover { name: String },
    /// Reset a branch to its parent's current state (same URL and password). The state
    /// it replaces is kept as a stopped branch for 7 days unless --discard.
    Reset {
        name: String,
        #[command(flatten)]
        opts: ResetOpts,
    },
    /// Replace a branch's data with a snapshot (same URL and password); what it held is
    /// kept as a snapshot. `--to before-last-migration` undoes the last after-create run.
    Restore {
        name: String,
        /// A snapshot's name or id, or before-last-migration.
        #[arg(long, value_name = "SNAPSHOT")]
        to: String,
        /// End the sessions of connected clients instead of refusing.
        #[arg(long)]
        force: bool,
        /// Wait this long for connected clients to leave before refusing (e.g. 30s).
        #[arg(long, value_name = "DURATION", conflicts_with = "force")]
        wait: Option<String>,
    },
    /// Reset onto the parent's current state, then run the after-create command (the
    /// branch's own migrations) from its work tree: a database rebase.
    Refresh {
        name: String,
        #[command(flatten)]
        opts: ResetOpts,
    },
    /// Start a branch's Postgres.
    Start { name: String },
    /// Stop a branch's Postgres.
    Stop { name: String },
    /// Rename a branch.
    Rename { old: String, new: String },
    /// Set or clear (`none`) a branch's time to live.
    SetTtl { name: String, ttl: String },
    /// Set how long a branch may go without clients before it is suspended
    /// (a duration, -1 for never, or `default`).
    SetIdleTimeout {
        name: String,
        #[arg(allow_hyphen_values = true)]
        timeout: String,
    },
    /// Protect a branch from deletion.
    Protect { name: String },
    /// Remove deletion protection.
    Unprotect { name: String },
    /// Run the repository's after-create command (.pgfork.toml) on a branch again.
    Migrate { name: String },
    /// The schema changes of a branch against its parent (or --against), as a unified diff.
    Diff {
        name: String,
        /// Compare against this branch instead of the parent.
        #[arg(long, value_name = "BRANCH")]
        against: Option<String>,
        /// The database to compare (default: the project's).
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
        /// The changed objects as JSON (kind, name, before, after), with the diff.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct McpArgs {
    #[command(subcommand)]
    pub command: Option<McpCommand>,
    /// Offer only the tools that change nothing.
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Let SQL write to the root and protected branches.
    #[arg(long, global = true)]
    pub allow_protected_writes: bool,
    /// TTL of branches the agent makes without one (default 24h; "none" keeps them).
    #[arg(long, global = true, value_name = "DURATION")]
    pub default_ttl: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Write an MCP client's configuration for this repository (merged into what is
    /// there): Claude Code `.mcp.json`, Cursor `.cursor/mcp.json`, VS Code `.vscode/mcp.json`.
    Install {
        #[arg(long, value_enum)]
        client: McpClient,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum McpClient {
    Claude,
    Cursor,
    Vscode,
}

#[derive(Debug, Subcommand)]
pub enum MaskCommand {
    /// List the columns of a branch (default: the root) whose name, type or sampled
    /// values look personal and that no masking rule covers; exits 1 if there are any.
    #[command(
        after_help = "Examples:\n  pgfork mask check                      # rules from .pgfork.toml [masking]\n  pgfork mask check masking.toml --strict\n  pgfork mask check --branch main --json"
    )]
    Check {
        /// The rules file (default: `[masking] rules` in .pgfork.toml; none: everything
        /// that looks personal is listed).
        rules: Option<String>,
        /// The branch to look at (default: the root).
        #[arg(long)]
        branch: Option<String>,
        /// Judge as strict mode does: also the undecided columns of masked tables.
        #[arg(long)]
        strict: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Every project: name, id, Postgres version, branches.
    #[command(visible_alias = "ls")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// One project.
    Get {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a project and every branch in it, for good (asks for --yes).
    #[command(visible_alias = "rm")]
    Delete {
        name: String,
        /// Confirm: all of the project's branches are removed, not trashed.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Make (or replace) the project's webhook secret and print it with the URLs to
    /// give your forge; the secret is shown only now.
    Create {
        /// Pull-request branches expire after this long even if the pull request stays
        /// open (e.g. 7d).
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Remember a server. Its API key comes from PGFORK_API_KEY or, with
    /// --key-stdin, standard input: never from the command line, where `ps` shows it.
    Add {
        name: String,
        /// Base URL, e.g. https://pgfork.example.com:4480/api/v2.
        url: String,
        /// Read the API key from standard input.
        #[arg(long)]
        key_stdin: bool,
        /// The server's CA certificate (PEM), e.g. a copy of its $PGFORK_HOME/tls/ca.crt.
        #[arg(long, value_name = "PATH")]
        ca: Option<std::path::PathBuf>,
        /// Use it from now on.
        #[arg(long = "use")]
        use_it: bool,
    },
    /// Use a remote for every command and hook; `local` goes back to the local daemon.
    Use { name: String },
    /// Known remotes, and which is in use.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Forget a remote.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a key and print it (the only time it is shown).
    Create {
        /// Who or what uses it, e.g. `ci` or `alice`.
        name: String,
        /// Limit the key to one project.
        #[arg(long)]
        project: Option<String>,
        /// GET requests only.
        #[arg(long)]
        read_only: bool,
        /// Expire after this long, e.g. `30d` or `8h`.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Keys, their limits and last use (never the secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or name; requests with it fail from now on.
    Revoke { key: String },
}

#[derive(Debug, Subcommand)]
pub enum TrashCommand {
    /// Deleted branches: when, why, until when they can be recovered, their port.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Purges deleted branches for good (all, or those deleted longer ago than D).
    Empty {
        /// Only branches deleted at least this long ago, e.g. `2h`, `7d`.
        #[arg(long, value_name = "D")]
        older_than: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Install (or refresh) the hooks, chained with any existing ones.
    Install,
    /// Remove only pgfork's part of the hooks.
    Uninstall,
    /// Which hooks are installed where.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Run in the foreground (what `start` runs in the background).
    Run {
        /// Address the branch ports listen on (default 127.0.0.1; 0.0.0.0 for a team
        /// server). Same as PGFORK_LISTEN.
        #[arg(long, env = "PGFORK_LISTEN")]
        listen: Option<String>,
        /// Serve the API on the network too: PORT (loopback), IP:PORT or
        /// http(s)://IP:PORT. Every request needs a key (`pgfork token create`); beyond
        /// loopback TLS is the default. Same as PGFORK_API_LISTEN.
        #[arg(long, value_name = "ADDR", env = "PGFORK_API_LISTEN")]
        api: Option<String>,
        /// Allow plain HTTP for an API reachable from other machines.
        #[arg(long)]
        insecure: bool,
        /// The host name clients reach this server by: in every connection URL and
        /// endpoint, and on the TLS certificate. Same as PGFORK_PUBLIC_HOST.
        #[arg(long, value_name = "NAME", env = "PGFORK_PUBLIC_HOST")]
        public_host: Option<String>,
    },
    /// Start in the background if not running.
    Start,
    /// Stop the daemon and every branch's Postgres.
    Stop,
    /// Is it running, where, with what.
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// What a reset or refresh keeps and whom it may interrupt.
#[derive(Debug, Clone, clap::Args)]
pub struct ResetOpts {
    /// Keep the replaced state as a branch of this name (default
    /// NAME-before-reset-TIME).
    #[arg(long, value_name = "NAME", conflicts_with = "discard")]
    pub preserve_as: Option<String>,
    /// Do not keep the replaced state.
    #[arg(long)]
    pub discard: bool,
    /// End the sessions of connected clients instead of refusing.
    #[arg(long)]
    pub force: bool,
    /// Wait this long for connected clients to leave before refusing (e.g. 30s).
    #[arg(long, value_name = "DURATION", conflicts_with = "force")]
    pub wait: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Import the root again from its source, aside, and swap it in (same URL; existing
    /// branches are untouched).
    Refresh {
        /// A new source from now on, from this environment variable (new credentials,
        /// another host).
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
        /// How to import the new source (default: as the root was made).
        #[arg(long, value_enum)]
        method: Option<ImportMethod>,
        /// Also refresh on its own: daily, weekly, hourly, a duration (12h) or off.
        #[arg(long, value_name = "WHEN")]
        schedule: Option<String>,
        /// Only change the schedule; do not refresh now.
        #[arg(long)]
        schedule_only: bool,
        /// End the sessions of clients connected to the root instead of refusing.
        #[arg(long)]
        force: bool,
        /// Wait this long for clients of the root to leave before refusing (e.g. 30s).
        #[arg(long, value_name = "DURATION", conflicts_with = "force")]
        wait: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of a branch (default: HEAD's); on a reflink store it costs
    /// nothing until the branch changes.
    Create {
        branch: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Delete it after this long (e.g. 7d).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The project's snapshots, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot.
    Delete { name: String },
}

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
    /// Print passwords in URLs (otherwise `****`; `pgfork url` always prints them,
    /// as that is its job).
    #[arg(long, global = true)]
    pub show_password: bool,
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
    /// Print JSON (schema: docs/json.md).
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
        alias = "branches",
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
        /// Branch name (default: the branch of the current git HEAD, else the root).
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
    #[command(
        after_help = "Examples:\n  pgfork psql                                   # HEAD's database\n  pgfork psql feature-x -- -c 'select count(*) from users'\n  pgfork psql main --superuser                  # as the superuser, on this machine"
    )]
    Psql {
        /// Branch name (default: the branch of the current git HEAD, else the root).
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
    #[command(
        after_help = "Examples:\n  pgfork diff                              # HEAD's branch against its parent\n  pgfork diff feature-x --against staging\n  pgfork diff --json                       # the changed objects"
    )]
    Diff {
        /// Branch name (default: the branch of the current git HEAD, else the root).
        branch: Option<String>,
        /// Compare against this branch instead of the parent.
        #[arg(long, value_name = "BRANCH")]
        against: Option<String>,
        /// The database to compare (default: the project's).
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Repository, HEAD, its branch, the daemon and the store.
    #[command(after_help = "Examples:\n  pgfork status\n  pgfork status --json   # for scripts")]
    Status {
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Check what works and print the exact fix for what does not.
    #[command(
        after_help = "Examples:\n  pgfork doctor\n  pgfork doctor --json   # every check with its fix"
    )]
    Doctor {
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Install, remove or inspect the git hooks that pair branches with databases.
    #[command(
        after_help = "Examples:\n  pgfork hooks install   # pair git branches with databases\n  pgfork hooks status"
    )]
    Hooks {
        #[command(subcommand)]
        command: HooksCommand,
    },
    /// Run by the git hooks (not for direct use).
    #[command(
        hide = true,
        after_help = "Examples:\n  pgfork hook post-checkout \"$@\"   # what .git/hooks/post-checkout runs"
    )]
    Hook {
        /// The git hook that runs (post-checkout, reference-transaction, post-merge).
        name: String,
        /// The arguments git gave the hook.
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Remove branches whose git branch is gone or merged, expired TTLs, old trash.
    #[command(after_help = "Examples:\n  pgfork gc --dry-run   # what would go\n  pgfork gc")]
    Gc {
        /// Only say what would be done.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Allows this repository's .pgfork.toml commands (after_create) to run on this
    /// machine; asked again whenever the command changes.
    #[command(
        after_help = "Examples:\n  pgfork allow   # after reviewing after_create in .pgfork.toml"
    )]
    Allow,
    /// Deleted branches, recoverable until their grace period ends.
    #[command(
        after_help = "Examples:\n  pgfork trash list\n  pgfork branch recover ci-42         # bring one back\n  pgfork trash empty --older-than 7d"
    )]
    Trash {
        #[command(subcommand)]
        command: TrashCommand,
    },
    /// Run or control the daemon.
    #[command(
        after_help = "Examples:\n  pgfork daemon start\n  pgfork daemon status\n  pgfork daemon run --listen 0.0.0.0 --api 0.0.0.0:4480 --public-host db.example.com"
    )]
    Daemon {
        #[command(subcommand)]
        command: DaemonCommand,
    },
    /// API keys for the network API (`--api`, `PGFORK_API_LISTEN`): shown once, kept
    /// hashed. Managed on the server's machine only.
    #[command(
        alias = "tokens",
        after_help = "Examples:\n  pgfork token create ci --project web --expires-in 90d\n  pgfork token create dashboard --read-only\n  pgfork token list\n  pgfork token revoke ci"
    )]
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Pull-request branches by webhook (team server): GitHub, GitLab and Gitea tell
    /// pgfork when a pull request opens (branch `pr-N` from its base) and closes (to the
    /// trash).
    #[command(
        after_help = "Examples:\n  pgfork webhook create --ttl 7d   # prints the secret and the URLs for your forge"
    )]
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
    #[command(
        alias = "snapshots",
        after_help = "Examples:\n  pgfork snapshot create --name before-deploy\n  pgfork branch create hotfix --from-snapshot before-deploy\n  pgfork branch restore main --to before-deploy"
    )]
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// The project's root: make it again from its source, now or on a schedule.
    #[command(
        after_help = "Examples:\n  pgfork root refresh                                  # import it again now\n  pgfork root refresh --schedule daily --schedule-only"
    )]
    Root {
        #[command(subcommand)]
        command: RootCommand,
    },
    /// Projects: list, show, delete (with every branch).
    #[command(
        alias = "projects",
        after_help = "Examples:\n  pgfork project list\n  pgfork project get web --json\n  pgfork project delete old-app --yes"
    )]
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Masking of personal data: which columns look personal and no rule covers.
    #[command(
        after_help = "Examples:\n  pgfork mask check                 # columns that look personal and no rule covers\n  pgfork mask check masking.toml --strict"
    )]
    Mask {
        #[command(subcommand)]
        command: MaskCommand,
    },
    /// Print a shell completion script: `pgfork completions bash > ~/.local/share/bash-completion/completions/pgfork`.
    #[command(
        after_help = "Examples:\n  pgfork completions bash > ~/.local/share/bash-completion/completions/pgfork\n  pgfork completions zsh > ~/.zfunc/_pgfork\n  pgfork completions fish > ~/.config/fish/completions/pgfork.fish"
    )]
    Completions {
        /// The shell to write the script for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// A self-contained walkthrough in a temporary repository.
    #[command(
        after_help = "Examples:\n  pgfork demo\n  pgfork demo --scale 20 --keep   # bigger data; keep the repository to explore"
    )]
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
    #[command(
        after_help = "Examples:\n  pgfork branch create ci-42 --ttl 2h                  # a copy of the root, gone in 2h\n  pgfork branch create feature-x --parent staging --mask masking.toml\n  pgfork branch create debug --parent main --at \"10m ago\""
    )]
    Create {
        /// Name of the new branch (usually the git branch's).
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
        /// Keep this much of its past (its own WAL archive), e.g. 24h; 0 for none.
        /// Default: `[history] window` in .pgfork.toml.
        #[arg(long, value_name = "WINDOW")]
        history: Option<String>,
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// List branches with state, port, sizes and clone method.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  pgfork branch list\n  pgfork branch ls --all --json   # the trash too, as JSON"
    )]
    List {
        /// Include deleted branches in the trash.
        #[arg(long)]
        all: bool,
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Show one branch.
    #[command(
        after_help = "Examples:\n  pgfork branch get feature-x\n  pgfork branch get feature-x --json"
    )]
    Get {
        /// Branch name (or id).
        name: String,
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Soft-delete (recoverable during the grace period), or --purge for good.
    #[command(
        visible_alias = "rm",
        after_help = "Examples:\n  pgfork branch delete ci-42          # to the trash; `branch recover ci-42` undoes it\n  pgfork branch rm ci-42 --purge      # for good"
    )]
    Delete {
        /// Branch name (or id).
        name: String,
        /// Remove it for good instead of moving it to the trash.
        #[arg(long)]
        purge: bool,
    },
    /// Bring a deleted branch back from the trash.
    #[command(after_help = "Examples:\n  pgfork branch recover ci-42")]
    Recover {
        /// Name (or id) of the deleted branch.
        name: String,
    },
    /// Reset a branch to its parent's current state (same URL and password). The state
    /// it replaces is kept as a stopped branch for 7 days unless --discard.
    #[command(
        after_help = "Examples:\n  pgfork branch reset feature-x                        # back to its parent's current state\n  pgfork branch reset feature-x --preserve-as feature-x-old\n  pgfork branch reset ci-42 --discard --force"
    )]
    Reset {
        /// Branch name (or id).
        name: String,
        #[command(flatten)]
        opts: ResetOpts,
    },
    /// Replace a branch's data with a snapshot (same URL and password); what it held is
    /// kept as a snapshot. `--to before-last-migration` undoes the last after-create run.
    #[command(
        after_help = "Examples:\n  pgfork branch restore feature-x --to before-deploy\n  pgfork branch restore feature-x --to before-last-migration --wait 30s"
    )]
    Restore {
        /// Branch name (or id).
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
    #[command(
        after_help = "Examples:\n  pgfork branch refresh feature-x             # parent's data, then this branch's migrations\n  pgfork branch refresh feature-x --discard"
    )]
    Refresh {
        /// Branch name (or id).
        name: String,
        #[command(flatten)]
        opts: ResetOpts,
    },
    /// Show or change what a branch keeps of its past: a window of WAL (any moment in it
    /// can be branched from or restored to), snapshots on a schedule, or nothing.
    #[command(
        after_help = "Examples:\n  pgfork branch history main                       # what it keeps now\n  pgfork branch history main --window 24h          # every moment of the last day\n  pgfork branch history main --window 0 --snapshot-every 1h --keep 24   # hourly snapshots only\n  pgfork branch history main --off                 # keep nothing (drops its history)"
    )]
    History {
        /// Branch name (or id).
        name: String,
        /// Keep every moment this far back (e.g. 24h); 0 keeps no WAL. Turning the WAL
        /// archive on or off restarts a running branch.
        #[arg(long, value_name = "WINDOW")]
        window: Option<String>,
        /// A history snapshot this often (e.g. 1h): less WAL to replay for a moment.
        #[arg(long, value_name = "DURATION")]
        snapshot_every: Option<String>,
        /// At most this many history snapshots.
        #[arg(long, value_name = "N")]
        keep: Option<u32>,
        /// Keep nothing: the WAL archive and the history snapshots go.
        #[arg(long, conflicts_with_all = ["window", "snapshot_every", "keep"])]
        off: bool,
        /// End the sessions of connected clients when the branch must restart.
        #[arg(long)]
        force: bool,
        /// Wait this long for connected clients to leave before refusing (e.g. 30s).
        #[arg(long, value_name = "DURATION", conflicts_with = "force")]
        wait: Option<String>,
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Start a branch's Postgres.
    #[command(after_help = "Examples:\n  pgfork branch start feature-x")]
    Start {
        /// Branch name (or id).
        name: String,
    },
    /// Stop a branch's Postgres.
    #[command(
        after_help = "Examples:\n  pgfork branch stop feature-x   # frees its memory; the data stays"
    )]
    Stop {
        /// Branch name (or id).
        name: String,
    },
    /// Rename a branch.
    #[command(after_help = "Examples:\n  pgfork branch rename feature-x feature-y")]
    Rename {
        /// The branch's current name (or id).
        old: String,
        /// Its new name.
        new: String,
    },
    /// Set or clear (`none`) a branch's time to live.
    #[command(
        after_help = "Examples:\n  pgfork branch set-ttl ci-42 24h    # deleted 24h from now\n  pgfork branch set-ttl ci-42 none   # kept"
    )]
    SetTtl {
        /// Branch name (or id).
        name: String,
        /// How long from now (e.g. 24h, 7d), or `none`.
        ttl: String,
    },
    /// Set how long a branch may go without clients before it is suspended
    /// (a duration, -1 for never, or `default`).
    #[command(
        after_help = "Examples:\n  pgfork branch set-idle-timeout feature-x 30m\n  pgfork branch set-idle-timeout main -1        # never suspend\n  pgfork branch set-idle-timeout main default"
    )]
    SetIdleTimeout {
        /// Branch name (or id).
        name: String,
        /// A duration (e.g. 10m), -1 for never, or `default` (the daemon's).
        #[arg(allow_hyphen_values = true)]
        timeout: String,
    },
    /// Protect a branch from deletion.
    #[command(after_help = "Examples:\n  pgfork branch protect staging")]
    Protect {
        /// Branch name (or id).
        name: String,
    },
    /// Remove deletion protection.
    #[command(after_help = "Examples:\n  pgfork branch unprotect staging")]
    Unprotect {
        /// Branch name (or id).
        name: String,
    },
    /// Run the repository's after-create command (.pgfork.toml) on a branch again.
    #[command(after_help = "Examples:\n  pgfork branch migrate feature-x")]
    Migrate {
        /// Branch name (or id).
        name: String,
    },
    /// The schema changes of a branch against its parent (or --against), as a unified diff.
    #[command(
        after_help = "Examples:\n  pgfork branch diff feature-x\n  pgfork branch diff feature-x --against staging --json"
    )]
    Diff {
        /// Branch name (or id).
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
    #[command(
        after_help = "Examples:\n  pgfork mcp install --client claude               # .mcp.json\n  pgfork mcp install --client cursor --read-only   # .cursor/mcp.json, tools that change nothing"
    )]
    Install {
        /// The MCP client to configure.
        #[arg(long, value_enum)]
        client: McpClient,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum McpClient {
    /// Claude Code: .mcp.json.
    Claude,
    /// Cursor: .cursor/mcp.json.
    Cursor,
    /// VS Code: .vscode/mcp.json.
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
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Every project: name, id, Postgres version, branches.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  pgfork project list\n  pgfork project ls --json"
    )]
    List {
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// One project.
    #[command(after_help = "Examples:\n  pgfork project get web\n  pgfork project get web --json")]
    Get {
        /// Project name (or id).
        name: String,
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Delete a project and every branch in it, for good (asks for --yes).
    #[command(
        visible_alias = "rm",
        after_help = "Examples:\n  pgfork project delete old-app --yes   # every branch in it goes, for good"
    )]
    Delete {
        /// Project name (or id).
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
    #[command(
        after_help = "Examples:\n  pgfork webhook create                # pull-request branches live as long as the pull request\n  pgfork webhook create --ttl 7d --json"
    )]
    Create {
        /// Pull-request branches expire after this long even if the pull request stays
        /// open (e.g. 7d).
        #[arg(long)]
        ttl: Option<String>,
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Remember a server. Its API key comes from PGFORK_API_KEY or, with
    /// --key-stdin, standard input: never from the command line, where `ps` shows it.
    #[command(
        after_help = "Examples:\n  pgfork remote add team https://db.example.com:4480/api/v2 --key-stdin --ca ca.crt --use < key.txt\n  PGFORK_API_KEY=... pgfork remote add neon https://console.neon.tech/api/v2"
    )]
    Add {
        /// A name for the remote (`local` is the local daemon).
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
    #[command(
        after_help = "Examples:\n  pgfork remote use team\n  pgfork remote use local   # back to the local daemon"
    )]
    Use {
        /// Remote name, or `local`.
        name: String,
    },
    /// Known remotes, and which is in use.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  pgfork remote list\n  pgfork remote ls --json"
    )]
    List {
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Forget a remote.
    #[command(
        visible_alias = "rm",
        after_help = "Examples:\n  pgfork remote remove team"
    )]
    Remove {
        /// Remote name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a key and print it (the only time it is shown).
    #[command(
        after_help = "Examples:\n  pgfork token create ci --project web --expires-in 90d\n  pgfork token create dashboard --read-only"
    )]
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
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Keys, their limits and last use (never the secrets).
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  pgfork token list\n  pgfork token ls --json"
    )]
    List {
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or name; requests with it fail from now on.
    #[command(
        visible_alias = "rm",
        after_help = "Examples:\n  pgfork token revoke ci"
    )]
    Revoke {
        /// The key's id or name.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrashCommand {
    /// Deleted branches: when, why, until when they can be recovered, their port.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  pgfork trash list\n  pgfork trash ls --json"
    )]
    List {
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Purges deleted branches for good (all, or those deleted longer ago than D).
    #[command(
        after_help = "Examples:\n  pgfork trash empty                   # every deleted branch, for good\n  pgfork trash empty --older-than 7d"
    )]
    Empty {
        /// Only branches deleted at least this long ago, e.g. `2h`, `7d`.
        #[arg(long, value_name = "D")]
        older_than: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Install (or refresh) the hooks, chained with any existing ones.
    #[command(after_help = "Examples:\n  pgfork hooks install")]
    Install,
    /// Remove only pgfork's part of the hooks.
    #[command(after_help = "Examples:\n  pgfork hooks uninstall   # your own hooks stay")]
    Uninstall,
    /// Which hooks are installed where.
    #[command(after_help = "Examples:\n  pgfork hooks status\n  pgfork hooks status --json")]
    Status {
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Run in the foreground (what `start` runs in the background).
    #[command(
        after_help = "Examples:\n  pgfork daemon run                    # e.g. under systemd\n  pgfork daemon run --listen 0.0.0.0 --api 0.0.0.0:4480 --public-host db.example.com   # team server"
    )]
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
    #[command(after_help = "Examples:\n  pgfork daemon start")]
    Start,
    /// Stop the daemon and every branch's Postgres.
    #[command(after_help = "Examples:\n  pgfork daemon stop")]
    Stop,
    /// Is it running, where, with what.
    #[command(after_help = "Examples:\n  pgfork daemon status\n  pgfork daemon status --json")]
    Status {
        /// Print JSON (schema: docs/json.md).
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
    #[command(
        after_help = "Examples:\n  pgfork root refresh                                   # import it again now\n  pgfork root refresh --schedule weekly --schedule-only\n  pgfork root refresh --from-env NEW_PROD_URL --wait 30s"
    )]
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
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of a branch (default: HEAD's); on a reflink store it costs
    /// nothing until the branch changes.
    #[command(
        after_help = "Examples:\n  pgfork snapshot create --name before-deploy               # HEAD's branch\n  pgfork snapshot create feature-x --name pre-migration --ttl 7d"
    )]
    Create {
        /// Branch name (default: the branch of the current git HEAD).
        branch: Option<String>,
        /// A name for the snapshot (to make branches from or restore to by name).
        #[arg(long)]
        name: Option<String>,
        /// Delete it after this long (e.g. 7d).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// The project's snapshots, newest first.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  pgfork snapshot list\n  pgfork snapshot ls --json"
    )]
    List {
        /// Print JSON (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot.
    #[command(
        visible_alias = "rm",
        after_help = "Examples:\n  pgfork snapshot delete before-deploy"
    )]
    Delete {
        /// Snapshot name (or id).
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every command and subcommand has examples in its `--help`, and every argument has
    /// help text; the failure names the command path.
    #[test]
    fn every_command_has_examples_and_every_argument_help() {
        fn walk(cmd: &clap::Command, path: &str, problems: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                let sub_path = format!("{path} {}", sub.get_name());
                let after = sub
                    .get_after_help()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                if !after.contains("Examples:") || !after.lines().any(|l| l.starts_with("  pgfork"))
                {
                    problems.push(format!(
                        "`{sub_path}`: no after_help with \"Examples:\" and a line starting \"  pgfork\""
                    ));
                }
                for arg in sub.get_arguments() {
                    let id = arg.get_id().as_str();
                    if id == "help" || id == "version" {
                        continue;
                    }
                    if arg.get_help().is_none() && arg.get_long_help().is_none() {
                        problems.push(format!("`{sub_path}`: argument `{id}` has no help text"));
                    }
                }
                walk(sub, &sub_path, problems);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut problems = Vec::new();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id != "help" && id != "version" && arg.get_help().is_none() {
                problems.push(format!("`pgfork`: argument `{id}` has no help text"));
            }
        }
        walk(&cmd, "pgfork", &mut problems);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }
}

# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_agentctl_global_optspecs
    string join \n socket= config= h/help V/version
end

function __fish_agentctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_agentctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_agentctl_using_subcommand
    set -l cmd (__fish_agentctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c agentctl -n "__fish_agentctl_needs_command" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_needs_command" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_needs_command" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_needs_command" -s V -l version -d 'Print version'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "status" -d 'What runs, from which revision, whether it is healthy, and what the agent does next'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "diff" -d 'The plan for the desired revision, applying nothing. Exit 0: nothing to do; 2: changes'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "sync" -d 'Reconcile now'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "wait" -d 'Block until the agent is where a script needs it: exit 0 there, 4 at the timeout, 1 when the revision waited for failed or was rolled back'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "version" -d 'This agentctl\'s version and the running agent\'s (version, commit, started)'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "history" -d 'Past deployments, newest first'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "rollback" -d 'Apply the last good (or the named) revision and hold the host there until `resume`'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "snapshots" -d 'List the data snapshots on this host, newest first: id, volume, kind (`before` or `failed-attempt`), the revision, age and size'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "restore" -d 'Restore one snapshot by hand: the volume\'s current data is snapshotted first, the containers that mount it are stopped, the data put back, and they start again on it'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "pause" -d 'Stop automatic reconciliation (maintenance)'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "resume" -d 'Restart automatic reconciliation (also lifts a rollback pin)'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "validate" -d 'Check a desired-state folder (or one file of it) offline, as CI would before merging; no agent needed'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "fleet" -d 'Every host\'s last report from Git (report.url): phase, revisions, health, age; no agent needed. Exit 1 when a host is failed, rolled back, stale or unverified'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "convert" -d 'Print the driftless/v1 documents a compose file means (with the .env beside it)'
complete -c agentctl -n "__fish_agentctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agentctl -n "__fish_agentctl_using_subcommand status" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand status" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand status" -l json -d 'One JSON object (documented keys; stable)'
complete -c agentctl -n "__fish_agentctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand diff" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand diff" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand diff" -l json
complete -c agentctl -n "__fish_agentctl_using_subcommand diff" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand sync" -l timeout -d 'With --wait: give up waiting after this long (e.g. 10m) and exit 4; the sync goes on' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand sync" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand sync" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand sync" -l wait -d 'Stream progress and wait; exit 1 if the revision was rolled back or failed'
complete -c agentctl -n "__fish_agentctl_using_subcommand sync" -l retry -d 'Try a revision again that failed before'
complete -c agentctl -n "__fish_agentctl_using_subcommand sync" -l ignore-rollout -d 'Apply now, past the rollout gates (rollout.after) until that revision is applied or superseded; the history says so'
complete -c agentctl -n "__fish_agentctl_using_subcommand sync" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand wait" -l for -d '`synced` (the desired revision runs and passed its gate), `healthy` (synced, every resource healthy), or `revision=REV` (REV, a commit id or its prefix, applied)' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand wait" -l timeout -d 'How long to wait (default 10m)' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand wait" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand wait" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand wait" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand version" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand version" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand version" -l json
complete -c agentctl -n "__fish_agentctl_using_subcommand version" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand history" -s n -d 'How many entries' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand history" -l show -d 'Print the newest entry of this revision (a commit id or its prefix) in full: changes, message, and per failing resource its state, exit code and last log lines' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand history" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand history" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand history" -l json
complete -c agentctl -n "__fish_agentctl_using_subcommand history" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand rollback" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand rollback" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand rollback" -l restore-data -d 'Also put every snapshotted volume back as it was while that revision ran (its newest `before` snapshot taken then); the current data is snapshotted first'
complete -c agentctl -n "__fish_agentctl_using_subcommand rollback" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand snapshots" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand snapshots" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand snapshots" -l json
complete -c agentctl -n "__fish_agentctl_using_subcommand snapshots" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand restore" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand restore" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand restore" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand pause" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand pause" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand pause" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand resume" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand resume" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand resume" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand validate" -s e -l environment -d 'Check only this environment\'s effective state' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand validate" -l host -d 'Check only this host\'s effective state (its `hosts:` overlays merged after the environment\'s); without it, every declared host\'s overlays are checked too' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand validate" -l profile -d 'Enable a compose profile (repeatable), as the agent config\'s compose_profiles' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand validate" -l identities -d 'Check that every .age file the state names decrypts with this identity (repeatable: age identity files or SSH private keys, as secrets.identities)' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand validate" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand validate" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand validate" -l render -d 'Print the effective desired state (overlays applied, defaults filled in)'
complete -c agentctl -n "__fish_agentctl_using_subcommand validate" -l json -d 'Print one JSON object instead of text'
complete -c agentctl -n "__fish_agentctl_using_subcommand validate" -l strict -d 'Refuse what is otherwise a warning: an environment or host name (-e, --host) that no document mentions. What CI runs'
complete -c agentctl -n "__fish_agentctl_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c agentctl -n "__fish_agentctl_using_subcommand fleet" -l url -d 'The report repository (default: report.url of the agent config)' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand fleet" -l signers -d 'An allowed_signers file whose principals are host names (default: rollout.signers)' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand fleet" -s e -l environment -d 'Only hosts of this environment' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand fleet" -l revision -d 'Where this revision (a commit id or a prefix of one) stands on each host' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand fleet" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand fleet" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand fleet" -l json -d 'Print a JSON list of rows instead of a table'
complete -c agentctl -n "__fish_agentctl_using_subcommand fleet" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand convert" -l profile -d 'Enable a compose profile (repeatable)' -r
complete -c agentctl -n "__fish_agentctl_using_subcommand convert" -l socket -d 'The agent\'s control socket' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand convert" -l config -d 'Read `control_socket` from this agent config' -r -F
complete -c agentctl -n "__fish_agentctl_using_subcommand convert" -s h -l help -d 'Print help'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "status" -d 'What runs, from which revision, whether it is healthy, and what the agent does next'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "diff" -d 'The plan for the desired revision, applying nothing. Exit 0: nothing to do; 2: changes'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "sync" -d 'Reconcile now'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "wait" -d 'Block until the agent is where a script needs it: exit 0 there, 4 at the timeout, 1 when the revision waited for failed or was rolled back'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "version" -d 'This agentctl\'s version and the running agent\'s (version, commit, started)'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "history" -d 'Past deployments, newest first'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "rollback" -d 'Apply the last good (or the named) revision and hold the host there until `resume`'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "snapshots" -d 'List the data snapshots on this host, newest first: id, volume, kind (`before` or `failed-attempt`), the revision, age and size'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "restore" -d 'Restore one snapshot by hand: the volume\'s current data is snapshotted first, the containers that mount it are stopped, the data put back, and they start again on it'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "pause" -d 'Stop automatic reconciliation (maintenance)'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "resume" -d 'Restart automatic reconciliation (also lifts a rollback pin)'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "validate" -d 'Check a desired-state folder (or one file of it) offline, as CI would before merging; no agent needed'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "fleet" -d 'Every host\'s last report from Git (report.url): phase, revisions, health, age; no agent needed. Exit 1 when a host is failed, rolled back, stale or unverified'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "convert" -d 'Print the driftless/v1 documents a compose file means (with the .env beside it)'
complete -c agentctl -n "__fish_agentctl_using_subcommand help; and not __fish_seen_subcommand_from status diff sync wait version history rollback snapshots restore pause resume validate fleet convert help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

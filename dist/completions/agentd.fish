complete -c agentd -s c -l config -d 'The agent config' -r -F
complete -c agentd -l log-format -d 'Log format: `text` for people, `json` for machines; `auto` is JSON under journald (JOURNAL_STREAM set), text otherwise' -r -f -a "auto\t''
text\t''
json\t''"
complete -c agentd -l log-level -d 'How much to log: error, warn, info, debug, trace, or target=level pairs (`info,driftless_agent::runtime=debug`). Before DRIFTLESS_LOG and the config\'s log_level; default info' -r
complete -c agentd -l check -d 'Validate the config and exit: 0 valid, 1 invalid (each problem as file:line:column: key: what is wrong)'
complete -c agentd -l once -d 'Run one reconcile and exit (cron on shared hosting): 0 synced or nothing to do, 1 the revision was rolled back, failed or is invalid'
complete -c agentd -l dry-run -d 'Follow the source and validate each new revision, but connect no runtime and apply nothing: `status` shows the revision the agent would apply (a canary for a new source or credentials; fleet benchmarks). Give it a state_dir of its own'
complete -c agentd -s h -l help -d 'Print help'
complete -c agentd -s V -l version -d 'Print version'

# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_depot_global_optspecs
    string join \n root= config= q/quiet v/verbose no-progress output-format= h/help V/version
end

function __fish_depot_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_depot_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_depot_using_subcommand
    set -l cmd (__fish_depot_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c depot -n "__fish_depot_needs_command" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_needs_command" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_needs_command" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_needs_command" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_needs_command" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_needs_command" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_needs_command" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_needs_command" -f -a "mirror" -d 'Define and update mirrors of upstream repositories'
complete -c depot -n "__fish_depot_needs_command" -f -a "snapshot" -d 'Take, inspect and compare immutable snapshots'
complete -c depot -n "__fish_depot_needs_command" -f -a "repo" -d 'Local repositories of CI-built packages'
complete -c depot -n "__fish_depot_needs_command" -f -a "release" -d 'Merge snapshots into integrated releases'
complete -c depot -n "__fish_depot_needs_command" -f -a "publish" -d 'Publish a snapshot or release as a new signed version of a distribution'
complete -c depot -n "__fish_depot_needs_command" -f -a "dist" -d 'Configure and inspect distributions: versions, stages, guards'
complete -c depot -n "__fish_depot_needs_command" -f -a "guard" -d 'Content guards: who may read a stage'
complete -c depot -n "__fish_depot_needs_command" -f -a "serve" -d 'Serve the publish root over HTTP(S), enforcing each stage\'s guard, and CI build repositories'
complete -c depot -n "__fish_depot_needs_command" -f -a "promote" -d 'Point a stage of a distribution at a version (atomic, audited)'
complete -c depot -n "__fish_depot_needs_command" -f -a "test" -d 'Submit, run and poll autopkgtest-style test requests'
complete -c depot -n "__fish_depot_needs_command" -f -a "build" -d 'CI build repositories (ceph\'s chacra and shaman): upload, list, latest'
complete -c depot -n "__fish_depot_needs_command" -f -a "train" -d 'Run the nightly release train of a YAML file, resumably'
complete -c depot -n "__fish_depot_needs_command" -f -a "prune" -d 'Drop old snapshots, releases and published versions by retention rules'
complete -c depot -n "__fish_depot_needs_command" -f -a "gc" -d 'Delete pool blobs, catalogs, cache entries and temp files nothing references'
complete -c depot -n "__fish_depot_needs_command" -f -a "check" -d 'Verify the data root and published versions; change nothing (exit 1 on any problem)'
complete -c depot -n "__fish_depot_needs_command" -f -a "generate" -d 'Write man pages and shell completions under DIR (for `cargo xtask gen`)'
complete -c depot -n "__fish_depot_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -f -a "create" -d 'Define a new mirror'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -f -a "update" -d 'Fetch and verify upstream\'s current state into the pool'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -f -a "list" -d 'List mirrors'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -f -a "show" -d 'Show a mirror\'s definition and last update'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -f -a "edit" -d 'Change a mirror\'s definition'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -f -a "drop" -d 'Delete a mirror (its snapshots are kept)'
complete -c depot -n "__fish_depot_using_subcommand mirror; and not __fish_seen_subcommand_from create update list show edit drop help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l kind -r -f -a "apt\t'Debian/Ubuntu repositories (apt)'
rpm\t'RPM repositories (dnf, yum)'"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l suite -d 'apt: suite (under dists/), or a flat repository\'s directory ending in `/`' -r
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l component -d 'Component to mirror (repeatable) [default: all in Release]' -r
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l arch -d 'Architecture to mirror (repeatable) [default: all in Release]' -r
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l keyring -d 'Keyring that upstream signatures must verify against' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l policy -d 'When package files are downloaded' -r -f -a "immediate\t'Download package files during `mirror update`'
on-demand\t'Keep metadata only; fetch a package the first time it is published'"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l mode -d 'What happens to packages upstream dropped' -r -f -a "mirror\t'Each update makes the mirror equal to upstream'
additive\t'Keep packages upstream dropped (rpm only)'"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l filter -d 'Mirror only the packages matching this query (aptly syntax)' -r
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l client-cert -d 'Client certificate (PEM) for an upstream behind an x509 guard' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l client-key -d 'Private key (PEM) of --client-cert' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l ca-cert -d 'CA bundle (PEM) to trust for the upstream\'s TLS certificate' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l no-verify -d 'Do not check upstream signatures (checksums are still checked)'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l with-sources -d 'Also mirror source packages (Sources and the files they name)'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l with-udebs -d 'Also mirror installer packages (debian-installer udebs)'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l with-deps -d 'With --filter: also every dependency of what it selects'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l verify-packages -d 'rpm: also check each package\'s own signature (header and payload digest, as `rpm -K`) against --keyring'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from update" -l concurrency -d 'Parallel package downloads per mirror [default: the settings file\'s `concurrency`, else 8]' -r
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from update" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from update" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from update" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from update" -l all -d 'Update every mirror'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from update" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from update" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from update" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from update" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from list" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from list" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from list" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from list" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from show" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from show" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from show" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from show" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l url -r
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l suite -r
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l component -d 'Replace the component list (repeatable)' -r
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l arch -d 'Replace the architecture list (repeatable)' -r
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l keyring -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l policy -r -f -a "immediate\t'Download package files during `mirror update`'
on-demand\t'Keep metadata only; fetch a package the first time it is published'"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l mode -r -f -a "mirror\t'Each update makes the mirror equal to upstream'
additive\t'Keep packages upstream dropped (rpm only)'"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l with-sources -r -f -a "true\t''
false\t''"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l with-udebs -r -f -a "true\t''
false\t''"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l verify-packages -d 'rpm: check each package\'s own signature against the keyring' -r -f -a "true\t''
false\t''"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l filter -d 'Mirror only the packages matching this query (\'\' removes the filter)' -r
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l with-deps -d 'With the filter: also every dependency of what it selects' -r -f -a "true\t''
false\t''"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l no-verify
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from edit" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from drop" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from drop" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from drop" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from drop" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from drop" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from drop" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from drop" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from drop" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from help" -f -a "create" -d 'Define a new mirror'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from help" -f -a "update" -d 'Fetch and verify upstream\'s current state into the pool'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from help" -f -a "list" -d 'List mirrors'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a mirror\'s definition and last update'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from help" -f -a "edit" -d 'Change a mirror\'s definition'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from help" -f -a "drop" -d 'Delete a mirror (its snapshots are kept)'
complete -c depot -n "__fish_depot_using_subcommand mirror; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -f -a "create" -d 'Take a snapshot of a mirror\'s last update, or of a local repo'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -f -a "list" -d 'List snapshots, oldest first'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -f -a "show" -d 'Show a snapshot'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -f -a "diff" -d 'Packages added, removed and changed from A to B'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -f -a "drop" -d 'Delete a snapshot (published versions are not affected)'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -f -a "filter" -d 'New snapshot DEST with the packages of SRC that match QUERY'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -f -a "search" -d 'List the packages of a snapshot (or release) matching QUERY'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -f -a "verify" -d 'Report every dependency nothing in the snapshot satisfies (exit 1 if any)'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and not __fish_seen_subcommand_from create list show diff drop filter search verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from create" -l mirror -r
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from create" -l repo -r
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from create" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from create" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from create" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from create" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from list" -l source -d 'Only snapshots of this mirror' -r
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from list" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from list" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from list" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from list" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from show" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from show" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from show" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from show" -l packages -d 'Also list every package'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from show" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from diff" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from diff" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from diff" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from diff" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from diff" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from diff" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from diff" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from diff" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from drop" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from drop" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from drop" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from drop" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from drop" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from drop" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from drop" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from drop" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from filter" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from filter" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from filter" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from filter" -l with-deps -d 'Also take every dependency (Depends, Pre-Depends; rpm Requires), until closed'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from filter" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from filter" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from filter" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from filter" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from filter" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from search" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from search" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from search" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from search" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from search" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from search" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from search" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from search" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from verify" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from verify" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from verify" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from verify" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from help" -f -a "create" -d 'Take a snapshot of a mirror\'s last update, or of a local repo'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from help" -f -a "list" -d 'List snapshots, oldest first'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a snapshot'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from help" -f -a "diff" -d 'Packages added, removed and changed from A to B'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from help" -f -a "drop" -d 'Delete a snapshot (published versions are not affected)'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from help" -f -a "filter" -d 'New snapshot DEST with the packages of SRC that match QUERY'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from help" -f -a "search" -d 'List the packages of a snapshot (or release) matching QUERY'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Report every dependency nothing in the snapshot satisfies (exit 1 if any)'
complete -c depot -n "__fish_depot_using_subcommand snapshot; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -f -a "create" -d 'Create an empty local repo'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -f -a "add" -d 'Add package files (.deb or .rpm): headers read, checked and pooled'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -f -a "remove" -d 'Remove the packages matching QUERY'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -f -a "list" -d 'List local repos'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -f -a "show" -d 'Show a repo and its packages'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -f -a "drop" -d 'Delete a repo (its snapshots are kept)'
complete -c depot -n "__fish_depot_using_subcommand repo; and not __fish_seen_subcommand_from create add remove list show drop help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from create" -l kind -r -f -a "apt\t'Debian/Ubuntu repositories (apt)'
rpm\t'RPM repositories (dnf, yum)'"
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from create" -l component -d 'Component its packages are published in' -r
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from create" -l arch -d 'Architectures of its indices (repeatable) [default: those of its packages]' -r
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from create" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from create" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from create" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from create" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from add" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from add" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from add" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from add" -l replace -d 'Replace a package of the same name, version and arch with other content'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from add" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from add" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from remove" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from remove" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from remove" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from remove" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from remove" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from remove" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from remove" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from list" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from list" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from list" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from list" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from show" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from show" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from show" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from show" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from drop" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from drop" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from drop" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from drop" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from drop" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from drop" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from drop" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from drop" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create an empty local repo'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add package files (.deb or .rpm): headers read, checked and pooled'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove the packages matching QUERY'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "list" -d 'List local repos'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a repo and its packages'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "drop" -d 'Delete a repo (its snapshots are kept)'
complete -c depot -n "__fish_depot_using_subcommand repo; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -f -a "create" -d 'Merge snapshots (or releases) into an immutable integrated release'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -f -a "list" -d 'List releases, oldest first'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -f -a "show" -d 'Show a release and its sources'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -f -a "diff" -d 'Packages added, removed and changed from A to B'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -f -a "drop" -d 'Delete a release (published versions are not affected)'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -f -a "verify" -d 'Report every dependency nothing in the release satisfies (exit 1 if any)'
complete -c depot -n "__fish_depot_using_subcommand release; and not __fish_seen_subcommand_from create list show diff drop verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from create" -l from -d 'Sources in priority order; their components are kept' -r
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from create" -l policy -d 'Which version of each package to keep' -r -f -a "latest\t'The highest version of each package name+arch'
first\t'The one from the earliest listed source (priority order)'
all\t'Every version'"
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from create" -l component -d 'Put all packages of these sources into component COMP (repeatable)' -r
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from create" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from create" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from create" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from create" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from list" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from list" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from list" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from list" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from show" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from show" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from show" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from show" -l packages -d 'Also list every package'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from show" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from diff" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from diff" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from diff" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from diff" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from diff" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from diff" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from diff" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from diff" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from drop" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from drop" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from drop" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from drop" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from drop" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from drop" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from drop" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from drop" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from verify" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from verify" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from verify" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from verify" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "create" -d 'Merge snapshots (or releases) into an immutable integrated release'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "list" -d 'List releases, oldest first'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a release and its sources'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "diff" -d 'Packages added, removed and changed from A to B'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "drop" -d 'Delete a release (published versions are not affected)'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Report every dependency nothing in the release satisfies (exit 1 if any)'
complete -c depot -n "__fish_depot_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand publish" -l dist -d 'Distribution: DIR/DIST/VERSION/ is written and DIR/DIST/dev switched to it' -r
complete -c depot -n "__fish_depot_using_subcommand publish" -l sign-key -d 'GnuPG key (id, fingerprint or user id) that signs the Release' -r
complete -c depot -n "__fish_depot_using_subcommand publish" -l suite -d 'Suite name in dists/ [default: the upstream codename]' -r
complete -c depot -n "__fish_depot_using_subcommand publish" -l compress -d 'Compressed index formats, comma-separated (gz, xz, zst) [default: apt gz,xz; rpm gz]' -r
complete -c depot -n "__fish_depot_using_subcommand publish" -l to -d 'Publish root [default: public/ in the data root]' -r -F
complete -c depot -n "__fish_depot_using_subcommand publish" -l as-version -d 'Name of the new version [default: the UTC time of the publish]; refused if it exists' -r
complete -c depot -n "__fish_depot_using_subcommand publish" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand publish" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand publish" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand publish" -l skip-signing -d 'Publish unsigned (apt then needs [trusted=yes])'
complete -c depot -n "__fish_depot_using_subcommand publish" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand publish" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand publish" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand publish" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand publish" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -f -a "create" -d 'Configure a distribution: the guard of each stage, the test gate'
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -f -a "list" -d 'List distributions with the versions their stages serve'
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -f -a "show" -d 'Show a distribution\'s versions, sources and stages'
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -f -a "push" -d 'Push stages to S3-compatible object storage (PREFIX/DIST/STAGE/ in the bucket)'
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -f -a "drop" -d 'Drop a published version (refused, exit 3, while a stage serves it)'
complete -c depot -n "__fish_depot_using_subcommand dist; and not __fish_seen_subcommand_from create list show push drop help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from create" -l stage -d 'Guard of a stage, STAGE=GUARD (repeatable; `public` means no guard) [default: dev=dev, release=release]' -r
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from create" -l to -d 'Publish root [default: public/ in the data root]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from create" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from create" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from create" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from create" -l require-tests -d 'Promotion to release requires passing tests'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from create" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from list" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from list" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from list" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from list" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from show" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from show" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from show" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from show" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l stage -d 'Stage to push: dev, release or a VERSION (repeatable) [default: every stage that serves a version]' -r
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l to -d 'Bucket and prefix: s3://BUCKET/PREFIX' -r
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l endpoint -d 'S3 endpoint URL (SeaweedFS, MinIO, Ceph RGW…) [default: $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, else AWS\'s regional endpoint]' -r
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l delete-after -d 'Delete an object that left the stage only this long after it left (e.g. 30m, 1h, 2d)' -r
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l concurrency -d 'Parallel requests' -r
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l path-style -d 'Path-style requests (ENDPOINT/BUCKET/KEY) instead of virtual-hosted ones (automatic for an IP address or localhost)'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l verify -d 'List the bucket and repair it (restore what is missing or changed, delete keys the stage does not have once --delete-after has passed), even when the push manifest could be trusted'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l dry-run -d 'Compare with the bucket and report what would be uploaded and deleted; change nothing'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from push" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from drop" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from drop" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from drop" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from drop" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from drop" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from drop" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from drop" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from drop" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from help" -f -a "create" -d 'Configure a distribution: the guard of each stage, the test gate'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from help" -f -a "list" -d 'List distributions with the versions their stages serve'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a distribution\'s versions, sources and stages'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from help" -f -a "push" -d 'Push stages to S3-compatible object storage (PREFIX/DIST/STAGE/ in the bucket)'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from help" -f -a "drop" -d 'Drop a published version (refused, exit 3, while a stage serves it)'
complete -c depot -n "__fish_depot_using_subcommand dist; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -f -a "create" -d 'Create a guard: client certificates from a CA, or bearer tokens'
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -f -a "list" -d 'List guards'
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -f -a "show" -d 'Show a guard (never its tokens)'
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -f -a "drop" -d 'Delete a guard'
complete -c depot -n "__fish_depot_using_subcommand guard; and not __fish_seen_subcommand_from create list show drop help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -l x509-ca -d 'CA bundle (PEM) client certificates must chain to' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -l subject -d 'With --x509-ca: the certificate subject must match this regex' -r
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -l token-file -d 'File of accepted tokens, one per line (stored hashed)' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -l scope -d 'With --token-file: what its tokens may do [default: read]' -r -f -a "read\t'read the stages that name the guard'
upload\t'upload CI builds to depot serve'"
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from list" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from list" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from list" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from list" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from show" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from show" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from show" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from show" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from drop" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from drop" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from drop" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from drop" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from drop" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from drop" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from drop" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from drop" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a guard: client certificates from a CA, or bearer tokens'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from help" -f -a "list" -d 'List guards'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a guard (never its tokens)'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from help" -f -a "drop" -d 'Delete a guard'
complete -c depot -n "__fish_depot_using_subcommand guard; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand serve" -l listen -d 'Address to listen on (port 0: any free port)' -r
complete -c depot -n "__fish_depot_using_subcommand serve" -l tls-cert -d 'Serve HTTPS with this certificate chain (PEM); x509 guards need it' -r -F
complete -c depot -n "__fish_depot_using_subcommand serve" -l tls-key -d 'Private key (PEM) of --tls-cert' -r -F
complete -c depot -n "__fish_depot_using_subcommand serve" -l sign-key -d 'Key (id, fingerprint or uid) signing build repositories [default: the settings file\'s sign-key]' -r
complete -c depot -n "__fish_depot_using_subcommand serve" -l quiet-time -d 'Time since a build\'s last upload before it is published [default: 30s]' -r
complete -c depot -n "__fish_depot_using_subcommand serve" -l webhook -d 'URL receiving each build state as a JSON POST (repeatable)' -r
complete -c depot -n "__fish_depot_using_subcommand serve" -l idle-timeout -d 'Close a connection on which no byte moved for this long; also the longest a TLS handshake or a request\'s headers may take [default: 30s]' -r
complete -c depot -n "__fish_depot_using_subcommand serve" -l max-connections -d 'Connections served at once; more wait in the listen backlog [default: the open-file limit less 256]' -r
complete -c depot -n "__fish_depot_using_subcommand serve" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand serve" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand serve" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand serve" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand serve" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand serve" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand serve" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand promote" -l to -d 'The stage to move' -r -f -a "dev\t'What builders and testers read'
release\t'What customers read'"
complete -c depot -n "__fish_depot_using_subcommand promote" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand promote" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand promote" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand promote" -l dry-run -d 'Show what would change, change nothing'
complete -c depot -n "__fish_depot_using_subcommand promote" -l require-tests -d 'Refuse (exit 3) unless every test recorded for the version passed'
complete -c depot -n "__fish_depot_using_subcommand promote" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand promote" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand promote" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand promote" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand promote" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -f -a "submit" -d 'Queue a test request per architecture (autopkgtest-cloud format)'
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -f -a "poll" -d 'Report test results for triggers; exit 0 passed, 1 failed, 4 pending'
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -f -a "worker" -d 'Run queued requests with COMMAND and store results (file:// or Swift)'
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -f -a "plan" -d 'Tests to request for what changed between two apt snapshots or releases'
complete -c depot -n "__fish_depot_using_subcommand test; and not __fish_seen_subcommand_from submit poll worker plan help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l for -d 'Record the request against a published version, DIST/VERSION, for `depot promote --require-tests`' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l results -d 'Where the recorded test\'s results will be polled [default: results/ in the data root]' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l release -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l arch -d 'Architecture (repeatable: one request each)' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l trigger -d 'Package version the test is for, SRCPKG/VERSION (repeatable)' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l ppa -d 'PPA to add to the testbed, USER/PPA (repeatable; the last names the results container)' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l env -d 'Environment variable for the test, K=V (repeatable)' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l test-git -d 'Take the tests from a git repository (and branch)' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l build-git -d 'Build the package from a git repository, URL[#REF]' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l test-bzr -d 'Take the tests from a bzr branch' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l testname -d 'Run only this test of the package' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l swiftuser -d 'Store results privately for this Swift user' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l readable-by -d 'Who else may read private results (repeatable; needs --swiftuser)' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l requester -d 'Who asked, recorded in the request' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l queue-kind -r -f -a "default\t'debci-RELEASE-ARCH'
huge\t'debci-huge-RELEASE-ARCH'
ppa\t'debci-ppa-RELEASE-ARCH (needs --ppa)'
upstream\t'debci-upstream-RELEASE-ARCH (needs --build-git or --test-git)'"
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l broker -d 'RabbitMQ broker, amqp://USER:PASSWORD@HOST[:PORT]/VHOST [default: $DEPOT_BROKER, else the settings file\'s `broker`, else the spool]' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l spool -d 'Spool directory of the embedded queue [default: spool/ in the data root]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l all-proposed -d 'Install everything from -proposed, not only the triggers'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from submit" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l release -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l arch -d 'Architecture (repeatable)' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l trigger -d 'Trigger to report on, SRC/VER (repeatable) [default: every trigger found]' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l ppa -d 'PPAs the requests named (the last one names the results container)' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l results -d 'file://DIR, a Swift account http(s)://HOST/v1/AUTH_ACCOUNT (anonymous), or swift+https://HOST/v1/AUTH_ACCOUNT (authenticated from ST_AUTH, ST_USER, ST_KEY or OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, OS_*_DOMAIN_NAME) [default: $DEPOT_RESULTS, else file://DATA_ROOT/results]' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l timeout -d 'Give up waiting after this long (e.g. 90s, 30m, 2h)' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l interval -d 'Time between polls while waiting' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l concurrency -d 'Parallel result downloads' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l private -d 'Read private results (requests submitted with --swiftuser)'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l wait -d 'Poll until nothing is pending (or --timeout passes)'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from poll" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -l broker -d 'RabbitMQ broker, amqp://USER:PASSWORD@HOST[:PORT]/VHOST [default: $DEPOT_BROKER, else the settings file\'s `broker`, else the spool]' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -l spool -d 'Spool directory of the embedded queue [default: spool/ in the data root]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -l results -d 'Where results are stored: file://DIR, or a Swift account swift+https://HOST/v1/AUTH_ACCOUNT (swift+http:// to loopback only), authenticated from ST_AUTH, ST_USER, ST_KEY, else OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME [default: $DEPOT_RESULTS, else file://DATA_ROOT/results]' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -l release -d 'Take requests for this release only (required with --broker)' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -l arch -d 'Take requests for these architectures only (required with --broker)' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -l interval -d 'Seconds between looks at empty queues' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -l once -d 'Run at most one request, then exit'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from worker" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -l release -d 'Release named in the requests [default: TO\'s codename, else its suite]' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -l arch -d 'Only these architectures (repeatable) [default: all of TO\'s]' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -l queue-kind -r -f -a "default\t'debci-RELEASE-ARCH'
huge\t'debci-huge-RELEASE-ARCH'
ppa\t'debci-ppa-RELEASE-ARCH (needs --ppa)'
upstream\t'debci-upstream-RELEASE-ARCH (needs --build-git or --test-git)'"
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -l broker -d 'RabbitMQ broker, amqp://USER:PASSWORD@HOST[:PORT]/VHOST [default: $DEPOT_BROKER, else the settings file\'s `broker`, else the spool]' -r
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -l spool -d 'Spool directory of the embedded queue [default: spool/ in the data root]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -l submit -d 'Queue the planned requests'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from plan" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from help" -f -a "submit" -d 'Queue a test request per architecture (autopkgtest-cloud format)'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from help" -f -a "poll" -d 'Report test results for triggers; exit 0 passed, 1 failed, 4 pending'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from help" -f -a "worker" -d 'Run queued requests with COMMAND and store results (file:// or Swift)'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from help" -f -a "plan" -d 'Tests to request for what changed between two apt snapshots or releases'
complete -c depot -n "__fish_depot_using_subcommand test; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -f -a "upload" -d 'Upload packages of one build (to `depot serve`, or into the local root)'
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -f -a "list" -d 'List builds (newest SHA1 first)'
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -f -a "show" -d 'Show one build: state history, packages, extra metadata'
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -f -a "latest" -d 'The newest SHA1 of a ref that is ready on every given distro'
complete -c depot -n "__fish_depot_using_subcommand build; and not __fish_seen_subcommand_from upload list show latest help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -l flavor -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -l extra -d 'Metadata for the build\'s `extra` (build URL, job, version), repeatable' -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -l server -d 'Upload to this `depot serve` (http://HOST:PORT/) instead of the local root' -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -l token-file -d 'File holding the upload token (first line)' -r -F
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -l force -d 'Replace a file of the same name that has other content'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from upload" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -l project -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -l ref -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -l sha1 -d 'A SHA1, or `latest` (needs --project, --ref and --distro)' -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -l distro -d 'DISTRO/VERSION[/ARCH] (repeatable)' -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -l flavor -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -l status -d 'requested, queued, building, ready or failed' -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from show" -l flavor -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from show" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from show" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from show" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from show" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -l project -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -l ref -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -l distro -d 'DISTRO/VERSION[/ARCH] the SHA1 must be ready on (repeatable)' -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -l flavor -r
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from latest" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from help" -f -a "upload" -d 'Upload packages of one build (to `depot serve`, or into the local root)'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from help" -f -a "list" -d 'List builds (newest SHA1 first)'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one build: state history, packages, extra metadata'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from help" -f -a "latest" -d 'The newest SHA1 of a ref that is ready on every given distro'
complete -c depot -n "__fish_depot_using_subcommand build; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -f -a "run" -d 'Start a new run of the train in FILE'
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -f -a "resume" -d 'Continue RUN, else the newest unfinished run: done steps are kept, the rest run again'
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -f -a "status" -d 'Show the steps of RUN (default: the newest run) and their state'
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -f -a "list" -d 'List the runs of the train'
complete -c depot -n "__fish_depot_using_subcommand train; and not __fish_seen_subcommand_from run resume status list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from run" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from run" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from run" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from run" -l dry-run -d 'Check the file against the data root and print the plan; write nothing'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from run" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from run" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from run" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from resume" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from resume" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from resume" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from resume" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from resume" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from resume" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from resume" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from status" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from status" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from status" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from status" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from list" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from list" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from list" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from list" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from help" -f -a "run" -d 'Start a new run of the train in FILE'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Continue RUN, else the newest unfinished run: done steps are kept, the rest run again'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show the steps of RUN (default: the newest run) and their state'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the runs of the train'
complete -c depot -n "__fish_depot_using_subcommand train; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand prune" -l source -d 'Only the snapshots and releases of this source (mirror, repo or release name)' -r
complete -c depot -n "__fish_depot_using_subcommand prune" -l dist -d 'Only the published versions of this distribution' -r
complete -c depot -n "__fish_depot_using_subcommand prune" -l project -d 'Only the CI builds of this project (kept per ref, by SHA1)' -r
complete -c depot -n "__fish_depot_using_subcommand prune" -l keep-last -d 'Keep the newest N of each group' -r
complete -c depot -n "__fish_depot_using_subcommand prune" -l keep-days -d 'Keep anything younger than D days' -r
complete -c depot -n "__fish_depot_using_subcommand prune" -l keep-released -d 'Keep the newest N versions ever promoted to release [default: all]' -r
complete -c depot -n "__fish_depot_using_subcommand prune" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand prune" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand prune" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand prune" -l dry-run -d 'List what would be dropped and the bytes it would free; drop nothing'
complete -c depot -n "__fish_depot_using_subcommand prune" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand prune" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand prune" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand prune" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand gc" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand gc" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand gc" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand gc" -l dry-run -d 'Report what would be deleted, delete nothing'
complete -c depot -n "__fish_depot_using_subcommand gc" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand gc" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand gc" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand gc" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c depot -n "__fish_depot_using_subcommand gc" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand check" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand check" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand check" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand check" -l full -d 'Also hash every pool blob and every published package file'
complete -c depot -n "__fish_depot_using_subcommand check" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand check" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand check" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand check" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand check" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand generate" -l root -d 'Data root [default: $DEPOT_ROOT, else $XDG_DATA_HOME/depot]' -r -F
complete -c depot -n "__fish_depot_using_subcommand generate" -l config -d 'Settings file (YAML) [default: $XDG_CONFIG_HOME/depot/config.yaml if present]' -r -F
complete -c depot -n "__fish_depot_using_subcommand generate" -l output-format -d 'Format of what is printed on stdout' -r -f -a "text\t''
json\t''"
complete -c depot -n "__fish_depot_using_subcommand generate" -s q -l quiet -d 'Print only errors'
complete -c depot -n "__fish_depot_using_subcommand generate" -s v -l verbose -d 'Print more (repeat for debug output); RUST_LOG overrides'
complete -c depot -n "__fish_depot_using_subcommand generate" -l no-progress -d 'Never draw progress bars'
complete -c depot -n "__fish_depot_using_subcommand generate" -s h -l help -d 'Print help'
complete -c depot -n "__fish_depot_using_subcommand generate" -s V -l version -d 'Print version'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "mirror" -d 'Define and update mirrors of upstream repositories'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "snapshot" -d 'Take, inspect and compare immutable snapshots'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "repo" -d 'Local repositories of CI-built packages'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "release" -d 'Merge snapshots into integrated releases'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "publish" -d 'Publish a snapshot or release as a new signed version of a distribution'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "dist" -d 'Configure and inspect distributions: versions, stages, guards'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "guard" -d 'Content guards: who may read a stage'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "serve" -d 'Serve the publish root over HTTP(S), enforcing each stage\'s guard, and CI build repositories'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "promote" -d 'Point a stage of a distribution at a version (atomic, audited)'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "test" -d 'Submit, run and poll autopkgtest-style test requests'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "build" -d 'CI build repositories (ceph\'s chacra and shaman): upload, list, latest'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "train" -d 'Run the nightly release train of a YAML file, resumably'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "prune" -d 'Drop old snapshots, releases and published versions by retention rules'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "gc" -d 'Delete pool blobs, catalogs, cache entries and temp files nothing references'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "check" -d 'Verify the data root and published versions; change nothing (exit 1 on any problem)'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "generate" -d 'Write man pages and shell completions under DIR (for `cargo xtask gen`)'
complete -c depot -n "__fish_depot_using_subcommand help; and not __fish_seen_subcommand_from mirror snapshot repo release publish dist guard serve promote test build train prune gc check generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from mirror" -f -a "create" -d 'Define a new mirror'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from mirror" -f -a "update" -d 'Fetch and verify upstream\'s current state into the pool'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from mirror" -f -a "list" -d 'List mirrors'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from mirror" -f -a "show" -d 'Show a mirror\'s definition and last update'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from mirror" -f -a "edit" -d 'Change a mirror\'s definition'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from mirror" -f -a "drop" -d 'Delete a mirror (its snapshots are kept)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from snapshot" -f -a "create" -d 'Take a snapshot of a mirror\'s last update, or of a local repo'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from snapshot" -f -a "list" -d 'List snapshots, oldest first'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from snapshot" -f -a "show" -d 'Show a snapshot'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from snapshot" -f -a "diff" -d 'Packages added, removed and changed from A to B'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from snapshot" -f -a "drop" -d 'Delete a snapshot (published versions are not affected)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from snapshot" -f -a "filter" -d 'New snapshot DEST with the packages of SRC that match QUERY'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from snapshot" -f -a "search" -d 'List the packages of a snapshot (or release) matching QUERY'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from snapshot" -f -a "verify" -d 'Report every dependency nothing in the snapshot satisfies (exit 1 if any)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "create" -d 'Create an empty local repo'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "add" -d 'Add package files (.deb or .rpm): headers read, checked and pooled'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "remove" -d 'Remove the packages matching QUERY'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "list" -d 'List local repos'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "show" -d 'Show a repo and its packages'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from repo" -f -a "drop" -d 'Delete a repo (its snapshots are kept)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from release" -f -a "create" -d 'Merge snapshots (or releases) into an immutable integrated release'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from release" -f -a "list" -d 'List releases, oldest first'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from release" -f -a "show" -d 'Show a release and its sources'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from release" -f -a "diff" -d 'Packages added, removed and changed from A to B'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from release" -f -a "drop" -d 'Delete a release (published versions are not affected)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from release" -f -a "verify" -d 'Report every dependency nothing in the release satisfies (exit 1 if any)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from dist" -f -a "create" -d 'Configure a distribution: the guard of each stage, the test gate'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from dist" -f -a "list" -d 'List distributions with the versions their stages serve'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from dist" -f -a "show" -d 'Show a distribution\'s versions, sources and stages'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from dist" -f -a "push" -d 'Push stages to S3-compatible object storage (PREFIX/DIST/STAGE/ in the bucket)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from dist" -f -a "drop" -d 'Drop a published version (refused, exit 3, while a stage serves it)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from guard" -f -a "create" -d 'Create a guard: client certificates from a CA, or bearer tokens'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from guard" -f -a "list" -d 'List guards'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from guard" -f -a "show" -d 'Show a guard (never its tokens)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from guard" -f -a "drop" -d 'Delete a guard'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from test" -f -a "submit" -d 'Queue a test request per architecture (autopkgtest-cloud format)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from test" -f -a "poll" -d 'Report test results for triggers; exit 0 passed, 1 failed, 4 pending'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from test" -f -a "worker" -d 'Run queued requests with COMMAND and store results (file:// or Swift)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from test" -f -a "plan" -d 'Tests to request for what changed between two apt snapshots or releases'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from build" -f -a "upload" -d 'Upload packages of one build (to `depot serve`, or into the local root)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from build" -f -a "list" -d 'List builds (newest SHA1 first)'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from build" -f -a "show" -d 'Show one build: state history, packages, extra metadata'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from build" -f -a "latest" -d 'The newest SHA1 of a ref that is ready on every given distro'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from train" -f -a "run" -d 'Start a new run of the train in FILE'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from train" -f -a "resume" -d 'Continue RUN, else the newest unfinished run: done steps are kept, the rest run again'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from train" -f -a "status" -d 'Show the steps of RUN (default: the newest run) and their state'
complete -c depot -n "__fish_depot_using_subcommand help; and __fish_seen_subcommand_from train" -f -a "list" -d 'List the runs of the train'

# A NixOS module for the Driftless agent: `services.driftless`.
#
#   imports = [ ./module.nix ];
#   services.driftless = {
#     enable = true;
#     package = pkgs.driftless;          # built from this repository
#     settings = {
#       environment = "production";
#       source = { url = "ssh://git@git.example.com/ops/state.git"; ref.tag = "production"; path = "hosts/web-1"; };
#     };
#   };
{ config, lib, pkgs, ... }:

let
  cfg = config.services.driftless;
  settingsFormat = pkgs.formats.yaml { };
  configFile = settingsFormat.generate "agent.yaml" cfg.settings;
in
{
  options.services.driftless = {
    enable = lib.mkEnableOption "the Driftless GitOps agent";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The package providing agentd and agentctl.";
    };

    settings = lib.mkOption {
      type = settingsFormat.type;
      default = { };
      description = "Rendered to /etc/driftless/agent.yaml; see docs/configuration.md for every key.";
    };

    environmentFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = "/run/secrets/driftless.env";
      description = "A file of KEY=value lines for the agent's environment (e.g. DOCKER_CONFIG, SSL_CERT_FILE); outside the Nix store.";
    };

    watchdogSec = lib.mkOption {
      type = lib.types.str;
      default = "5min";
      description = "systemd's WatchdogSec: the agent pings at a quarter of it while it makes progress (builds, pulls and health gates included).";
    };
  };

  config = lib.mkIf cfg.enable {
    services.driftless.settings = {
      host = lib.mkDefault config.networking.hostName;
      state_dir = lib.mkDefault "/var/lib/driftless";
      control_socket = lib.mkDefault "/run/driftless/agent.sock";
    };

    environment.etc."driftless/agent.yaml".source = configFile;
    environment.systemPackages = [ cfg.package ];

    systemd.services.driftless = {
      description = "Driftless GitOps agent";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      path = [ config.nix.package pkgs.git pkgs.openssh pkgs.systemd ];
      # The agent switches the system itself; a switch must never restart it half-way.
      restartIfChanged = false;
      serviceConfig = {
        # READY=1 once the control socket answers (before the first apply: a first NixOS
        # build may take longer than any start timeout); WATCHDOG=1 while a step progresses.
        Type = "notify";
        NotifyAccess = "main";
        WatchdogSec = cfg.watchdogSec;
        ExecStartPre = "${cfg.package}/bin/agentd --config /etc/driftless/agent.yaml --check";
        ExecStart = "${cfg.package}/bin/agentd --config /etc/driftless/agent.yaml";
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        # SIGTERM stops the agent between steps; an unfinished apply is finished on start.
        # switch-to-configuration itself runs in its own transient unit (systemd-run), so
        # stopping the agent never cuts an activation short.
        KillMode = "mixed";
        TimeoutStopSec = "120";
        Restart = "on-failure";
        RestartSec = "5s";
        StateDirectory = "driftless";
        StateDirectoryMode = "0750";
        RuntimeDirectory = "driftless";
        RuntimeDirectoryMode = "0750";
        UMask = "0027";
        EnvironmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;

        # Hardening, as far as switching a NixOS system allows. What has to stay open, and
        # why: the file system is writable (ProtectSystem is off) because nix-env writes
        # /nix/var/nix/profiles and switch-to-configuration writes /boot (bootloader entries),
        # /etc (activation) and /run; the capability set is root's (systemd-run and the
        # activation script manage units, users and mounts); the kernel-facing protections
        # (modules, tunables, cgroups) are off because activation loads modules, applies
        # sysctls and starts services. What stays closed:
        NoNewPrivileges = false; # activation runs setuid wrappers (sudo, ping) it installs
        PrivateTmp = true;
        ProtectHostname = false; # activation sets the host name
        ProtectClock = true;
        ProtectKernelLogs = true;
        RestrictRealtime = true;
        LockPersonality = true;
        KeyringMode = "private";
        SystemCallArchitectures = "native";
        RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" "AF_NETLINK" ];
      };
    };
  };
}

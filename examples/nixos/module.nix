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
        ExecStartPre = "${cfg.package}/bin/agentd --config /etc/driftless/agent.yaml --check";
        ExecStart = "${cfg.package}/bin/agentd --config /etc/driftless/agent.yaml";
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        Restart = "on-failure";
        RestartSec = "5s";
        StateDirectory = "driftless";
        RuntimeDirectory = "driftless";
        RuntimeDirectoryMode = "0750";
      };
    };
  };
}

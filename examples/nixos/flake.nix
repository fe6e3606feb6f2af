{
  description = "Desired NixOS systems, deployed by Driftless";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }: {
    nixosConfigurations.web-1 = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      modules = [
        ({ ... }: {
          boot.loader.grub.device = "/dev/vda";
          fileSystems."/" = { device = "/dev/vda1"; fsType = "ext4"; };
          services.nginx.enable = true;
          networking.firewall.allowedTCPPorts = [ 80 ];
          system.stateVersion = "24.05";
        })
      ];
    };
  };
}

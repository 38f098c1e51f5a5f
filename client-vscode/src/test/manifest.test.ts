/**
 * package.json is the half of the extension that TypeScript cannot check: these tests keep it in step
 * with the names the code uses.
 */
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { COMMANDS, LAUNCH_KEYS, SECTION, SERVER_KEYS } from "../settings";

interface Manifest {
    main: string;
    engines: { vscode: string };
    activationEvents: string[];
    capabilities: { untrustedWorkspaces: { supported: string | boolean; restrictedConfigurations?: string[] } };
    dependencies: Record<string, string>;
    contributes: {
        commands: { command: string; title: string }[];
        configuration: { properties: Record<string, { scope?: string; default?: unknown }> };
    };
}

// Compiled to out/test/, so the manifest is two levels up.
const manifest = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")) as Manifest;

describe("package.json", () => {
    it("contributes exactly the commands the extension handles", () => {
        const contributed = manifest.contributes.commands.map((command) => command.command).sort();
        assert.deepEqual(contributed, Object.values(COMMANDS).sort());
    });

    it("declares every setting the code reads, resource-scoped, and nothing else", () => {
        const declared = Object.keys(manifest.contributes.configuration.properties).sort();
        const read = [...SERVER_KEYS, ...LAUNCH_KEYS, "trace.server"].map((key) => `${SECTION}.${key}`).sort();
        assert.deepEqual(declared, read);
        for (const key of [...SERVER_KEYS, ...LAUNCH_KEYS]) {
            assert.equal(manifest.contributes.configuration.properties[`${SECTION}.${key}`]?.scope, "resource", key);
        }
    });

    it("shows the server's defaults in the settings UI", () => {
        const defaults = Object.fromEntries(
            Object.entries(manifest.contributes.configuration.properties).map(([key, value]) => [key, value.default]),
        );
        assert.equal(defaults["lspVerify.k"], 8);
        assert.equal(defaults["lspVerify.nGpuLayers"], null);
        assert.deepEqual(defaults["lspVerify.interpreter"], []);
    });

    it("runs with limited support in untrusted workspaces, ignoring the workspace's interpreter there", () => {
        assert.equal(manifest.capabilities.untrustedWorkspaces.supported, "limited");
        assert.ok(manifest.capabilities.untrustedWorkspaces.restrictedConfigurations?.includes("lspVerify.interpreter"));
        assert.ok(manifest.capabilities.untrustedWorkspaces.restrictedConfigurations?.includes("lspVerify.serverArgs"));
    });

    it("activates on Python and points at the compiled entry point", () => {
        assert.deepEqual(manifest.activationEvents, ["onLanguage:python"]);
        assert.equal(manifest.main, "./out/extension.js");
        assert.equal(manifest.engines.vscode, "^1.91.0");
        // 10 is the first with LSP 3.18's inline completion (registered by default).
        assert.match(manifest.dependencies["vscode-languageclient"], /^[~^]?10\./);
    });
});

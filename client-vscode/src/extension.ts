/**
 * Entry point: wires VS Code events to the server's lifecycle. The server itself lives in server.ts,
 * and everything that can be decided without VS Code in settings.ts.
 */
import * as vscode from "vscode";

import { PythonInterpreters } from "./python";
import { VerifyServer } from "./server";
import { changeNeedsRestart, COMMANDS, SECTION } from "./settings";

let server: VerifyServer | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    const log = vscode.window.createOutputChannel("lsp-verify", { log: true });
    context.subscriptions.push(log);

    const interpreters = await PythonInterpreters.connect(log);
    const verifyServer = new VerifyServer(log, interpreters);
    server = verifyServer;
    context.subscriptions.push(
        interpreters,
        verifyServer,
        vscode.commands.registerCommand(COMMANDS.restart, () => verifyServer.restart("Restart server command")),
        vscode.workspace.onDidChangeConfiguration((event) => {
            if (changeNeedsRestart((section) => event.affectsConfiguration(section))) {
                void verifyServer.restart("lspVerify settings changed");
            }
        }),
        vscode.workspace.onDidGrantWorkspaceTrust(() => {
            // The server was told `trusted: false` at initialize; only a new one may run tests and mypy.
            void verifyServer.restart("workspace trusted");
        }),
        interpreters.onDidChange(() => {
            const folder = vscode.workspace.workspaceFolders?.[0];
            const configured = vscode.workspace.getConfiguration(SECTION, folder?.uri).get<unknown[]>("interpreter", []);
            if (!Array.isArray(configured) || configured.length === 0) {
                void verifyServer.restart("Python interpreter changed");
            }
        }),
    );

    // Awaited so that a command which activated the extension finds the server's commands registered.
    await verifyServer.restart("extension activated");
}

export async function deactivate(): Promise<void> {
    const stopping = server;
    server = undefined;
    await stopping?.stop();
}

/**
 * A status-bar item while the server verifies. It takes over `window/workDoneProgress/create` from the
 * client library (whose own progress would show in the same place) and follows each token's `$/progress`;
 * when an inline completion's run ends, it asks VS Code for inline suggestions again.
 */
import * as vscode from "vscode";
import {
    type LanguageClient,
    type ProgressToken,
    WorkDoneProgress,
    WorkDoneProgressCreateRequest,
} from "vscode-languageclient/node";

import { applyProgress, isInlineRun, type RunningProgress, statusText } from "./progress";

export class VerifyingStatus implements vscode.Disposable {
    private readonly item = vscode.window.createStatusBarItem("lspVerify.verifying", vscode.StatusBarAlignment.Left, 0);
    private readonly running = new Map<string | number, RunningProgress>();

    constructor() {
        this.item.name = "lsp-verify";
    }

    /** Follows the progress of a started client; dispose the result when the client stops. */
    attach(client: LanguageClient): vscode.Disposable {
        const handlers = new Map<ProgressToken, vscode.Disposable>();
        const create = client.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
            handlers.get(token)?.dispose();
            handlers.set(
                token,
                client.onProgress(WorkDoneProgress.type, token, (value) => {
                    if (applyProgress(this.running, token, value)) {
                        const ended = this.running.get(token);
                        this.running.delete(token);
                        handlers.get(token)?.dispose();
                        handlers.delete(token);
                        if (isInlineRun(ended)) {
                            // The suggestion was asked for before it was verified: ask again now.
                            void vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
                        }
                    }
                    this.render();
                }),
            );
        });
        return {
            dispose: () => {
                create.dispose();
                for (const handler of handlers.values()) {
                    handler.dispose();
                }
                handlers.clear();
                this.running.clear();
                this.render();
            },
        };
    }

    dispose(): void {
        this.item.dispose();
    }

    private render(): void {
        const shown = statusText([...this.running.values()]);
        if (shown === undefined) {
            this.item.hide();
            return;
        }
        this.item.text = shown.text;
        this.item.tooltip = shown.tooltip;
        this.item.show();
    }
}

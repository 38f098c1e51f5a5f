/**
 * The server's "another value…" answer to a question: `lsp-verify/askValue` asks for a Python literal in an
 * input box (the server parses it, and asks again with the parse error when it is not one). The client says
 * it can with `experimental.lspVerifyAskValue`; without it the server offers only the outputs and "skip".
 */

import * as vscode from "vscode";
import type { ClientCapabilities, LanguageClient, StaticFeature } from "vscode-languageclient/node";

export const ASK_VALUE = "lsp-verify/askValue";

interface AskValueParams {
    prompt: string;
    error: string | null;
}

/** Call before the client starts: capabilities are filled in at `initialize`. */
export function registerAskValue(client: LanguageClient): void {
    const feature: StaticFeature = {
        fillClientCapabilities(capabilities: ClientCapabilities): void {
            const experimental = (capabilities.experimental ?? {}) as Record<string, unknown>;
            capabilities.experimental = { ...experimental, lspVerifyAskValue: true };
        },
        initialize(): void {},
        getState() {
            return { kind: "static" } as const;
        },
        clear(): void {},
    };
    client.registerFeature(feature);
    client.onRequest(ASK_VALUE, async (params: AskValueParams) => {
        const value = await vscode.window.showInputBox({
            title: "lsp-verify: another value",
            prompt: params.error ?? params.prompt,
            placeHolder: "a Python literal, e.g. [3, 6] or 'abc'",
            ignoreFocusOut: true,
        });
        return value ?? null;
    });
}

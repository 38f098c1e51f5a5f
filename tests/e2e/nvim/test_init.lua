-- Drives Neovim's built-in LSP client against lsp-verify, headless (works on 0.7 and later):
-- open a file, ask for code actions at a function, pick "Complete ...", resolve it, apply the edit the
-- server computed, and write the buffer (plus what happened) to $LSPV_OUT.
-- Environment: LSPV_FILE, LSPV_ROOT, LSPV_OUT, LSPV_FUNCTION, and either LSPV_SNIPPET (a Lua file that
-- starts the client itself: the README's set-up snippet) or LSPV_CMD (the server command, tab-separated),
-- LSPV_PYTHONPATH and LSPV_INIT_OPTIONS (JSON).
local out_path = os.getenv("LSPV_OUT")
local log = {}

local function finish(status)
  local buf = vim.api.nvim_get_current_buf()
  local out = io.open(out_path, "w")
  out:write("status: " .. status .. "\n")
  for _, line in ipairs(log) do
    out:write("log: " .. line .. "\n")
  end
  out:write("--- buffer\n")
  out:write(table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n") .. "\n")
  out:close()
  vim.cmd("qall!")
end

local ok, err = pcall(function()
  vim.lsp.handlers["window/showMessage"] = function(_, result)
    table.insert(log, "showMessage: " .. result.message:gsub("\n", " | "))
  end
  local snippet = os.getenv("LSPV_SNIPPET")
  if snippet then
    -- Neovim turns filetype detection on after the init file; this script runs inside it, so turn it on
    -- now, as it is in the user's session where the snippet lives.
    vim.cmd("filetype on")
    dofile(snippet) -- registers its FileType autocommand, which the edit below fires
  end
  vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("LSPV_FILE")))
  local buf = vim.api.nvim_get_current_buf()
  local client_id
  if snippet then
    vim.wait(10000, function()
      for _, client in ipairs((vim.lsp.get_clients or vim.lsp.get_active_clients)()) do
        if client.attached_buffers[buf] then
          client_id = client.id
        end
      end
      return client_id ~= nil
    end, 50)
    if client_id == nil then
      return finish("the snippet attached no client")
    end
    table.insert(log, "root: " .. vim.lsp.get_client_by_id(client_id).config.root_dir)
  else
    local cmd = vim.split(os.getenv("LSPV_CMD"), "\t", { plain = true })
    client_id = vim.lsp.start_client({
      name = "lsp-verify",
      cmd = cmd,
      cmd_env = { PYTHONPATH = os.getenv("LSPV_PYTHONPATH") },
      root_dir = os.getenv("LSPV_ROOT"),
      init_options = vim.fn.json_decode(os.getenv("LSPV_INIT_OPTIONS")),
    })
    vim.lsp.buf_attach_client(buf, client_id)
  end
  local ready = vim.wait(30000, function()
    local client = vim.lsp.get_client_by_id(client_id)
    return client ~= nil and client.server_capabilities ~= nil and client.server_capabilities.codeActionProvider ~= nil
  end, 50)
  if not ready then
    return finish("server did not initialize")
  end

  local line
  for i, text in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if text:find("def " .. os.getenv("LSPV_FUNCTION") .. "(", 1, true) then
      line = i - 1
      break
    end
  end
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    range = { start = { line = line, character = 4 }, ["end"] = { line = line, character = 4 } },
    context = { diagnostics = {} },
  }
  local responses = vim.lsp.buf_request_sync(buf, "textDocument/codeAction", params, 10000)
  local response = responses and responses[client_id]
  if not response or response.err or not response.result or #response.result == 0 then
    return finish("no code action: " .. vim.inspect(response))
  end
  local action = response.result[1]
  table.insert(log, "action: " .. action.title)

  local client = vim.lsp.get_client_by_id(client_id)
  if action.edit == nil and action.command == nil then
    local resolved = vim.lsp.buf_request_sync(buf, "codeAction/resolve", action, 600000)
    local answer = resolved and resolved[client_id]
    if not answer or answer.err then
      return finish("resolve failed: " .. vim.inspect(answer and answer.err))
    end
    action = answer.result
  end
  if action.edit then
    vim.lsp.util.apply_workspace_edit(action.edit, client.offset_encoding or "utf-16")
    table.insert(log, "applied edit")
  elseif action.command then
    local done = vim.lsp.buf_request_sync(buf, "workspace/executeCommand", action.command, 600000)
    table.insert(log, "command: " .. vim.inspect(done and done[client_id]))
  else
    table.insert(log, "no edit")
  end
  finish("done")
end)
if not ok then
  table.insert(log, "error: " .. tostring(err))
  finish("lua error")
end

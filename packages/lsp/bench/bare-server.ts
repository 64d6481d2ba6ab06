// The peer: a bare vscode-languageserver server that syncs documents with
// TextDocuments and answers completion with one fixed item (no context, no model).
import {
  createConnection,
  ProposedFeatures,
  TextDocumentSyncKind,
  TextDocuments,
} from 'vscode-languageserver/node'
import { TextDocument } from 'vscode-languageserver-textdocument'

const connection = createConnection(ProposedFeatures.all, process.stdin, process.stdout)
const documents = new TextDocuments(TextDocument)
connection.onInitialize(() => ({
  capabilities: { textDocumentSync: TextDocumentSyncKind.Incremental, completionProvider: {} },
}))
connection.onCompletion((params) => {
  const document = documents.get(params.textDocument.uri)
  return { isIncomplete: false, items: document ? [{ label: 'item' }] : [] }
})
documents.listen(connection)
connection.listen()

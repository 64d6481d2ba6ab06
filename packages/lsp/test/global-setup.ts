// Builds the shipped audit plugins of @aide/plugins once per run (idempotent:
// up-to-date outputs are kept), for the tests of the assembled server.
import { buildShippedPlugins } from '../../plugins/scripts/build-plugins.mjs'

export default async function setup(): Promise<void> {
  await buildShippedPlugins()
}

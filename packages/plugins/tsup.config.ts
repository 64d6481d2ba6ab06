import { aidePackageConfig } from '../../scripts/tsup-config.ts'

export default aidePackageConfig()

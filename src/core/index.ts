/** The mqctl core as a library: the Broker contract, the file-backed broker, and typed errors. */
export * from './broker.js'
export * from './errors.js'
export {FileBroker, type FileBrokerOptions} from './file-broker/index.js'
export {resolveHome} from './config.js'

import {daemonStatus} from '../../cli/defs/daemon.js'
import {oclifCommand} from '../../cli/oclif-adapter.js'

export default oclifCommand(daemonStatus)

import {queuePurge} from '../../cli/defs/queue.js'
import {oclifCommand} from '../../cli/oclif-adapter.js'

export default oclifCommand(queuePurge)

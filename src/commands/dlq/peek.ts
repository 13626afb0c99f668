import {dlqPeek} from '../../cli/defs/dlq.js'
import {oclifCommand} from '../../cli/oclif-adapter.js'

export default oclifCommand(dlqPeek)

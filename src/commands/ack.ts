import definition from '../cli/defs/ack.js'
import {oclifCommand} from '../cli/oclif-adapter.js'

export default oclifCommand(definition)

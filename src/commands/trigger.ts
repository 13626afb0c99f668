import definition from '../cli/defs/trigger.js'
import {oclifCommand} from '../cli/oclif-adapter.js'

export default oclifCommand(definition)

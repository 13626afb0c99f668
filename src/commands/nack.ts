import definition from '../cli/defs/nack.js'
import {oclifCommand} from '../cli/oclif-adapter.js'

export default oclifCommand(definition)

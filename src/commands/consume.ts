import definition from '../cli/defs/consume.js'
import {oclifCommand} from '../cli/oclif-adapter.js'

export default oclifCommand(definition)

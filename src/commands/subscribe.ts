import definition from '../cli/defs/subscribe.js'
import {oclifCommand} from '../cli/oclif-adapter.js'

export default oclifCommand(definition)
